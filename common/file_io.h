#ifndef LOTTERYFL_COMMON_FILE_IO_H_
#define LOTTERYFL_COMMON_FILE_IO_H_

// Small file readers shared by the server and the client binaries and libraries.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace lfl {

// Reads a whole file (TLS material, token files). NotFound names the path.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);
// Reads "<client-id> <token>" lines ('#' comments allowed): a client host's own tokens.
// InvalidArgument names the line at fault.
absl::StatusOr<std::map<int64_t, std::string>> ReadTokensFile(const std::string& path);
// Writes path.tmp, fsyncs it, renames it over path and fsyncs the directory: a crash leaves
// either the old file or the new one. Unavailable names the step and the path.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace lfl

#endif  // LOTTERYFL_COMMON_FILE_IO_H_

#ifndef LOTTERYFL_SERVER_UPLOAD_ASSEMBLER_H_
#define LOTTERYFL_SERVER_UPLOAD_ASSEMBLER_H_

// UploadAssembler: the order and size rules of one SubmitUpdate stream, apart from gRPC so
// that they can be tested and fuzzed on their own.
//
// A stream is one header, then payload chunks of at most max_chunk_bytes, exactly
// `declared` bytes in all. The header is admitted (authenticated and checked against the open
// task by the caller's `admit`) before any payload byte is accepted, and nothing is buffered
// beyond the declared size, which `admit` bounds. Errors name the rule that was broken:
//   InvalidArgument   data before the header, a second header, more data than declared,
//                     a stream that ends early or has no header;
//   ResourceExhausted a chunk above max_chunk_bytes;
//   whatever `admit` returns for a refused header.
// Not thread-safe (one stream, one reader).

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lfl {

class UploadAssembler {
 public:
  explicit UploadAssembler(uint32_t max_chunk_bytes) : max_chunk_bytes_(max_chunk_bytes) {}

  // `admit(declared)` decides whether the upload may proceed; OK lets its chunks in.
  absl::Status OnHeader(uint64_t declared, const std::function<absl::Status(uint64_t)>& admit);
  absl::Status OnData(std::string_view data);
  // After the last chunk: the whole payload, or why the stream was incomplete.
  absl::StatusOr<std::string> Finish();

  bool has_header() const { return have_header_; }
  uint64_t declared() const { return declared_; }
  uint64_t received() const { return payload_.size(); }

 private:
  const uint32_t max_chunk_bytes_;
  bool have_header_ = false;
  bool failed_ = false;
  uint64_t declared_ = 0;
  std::string payload_;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_UPLOAD_ASSEMBLER_H_

// libFuzzer target for the server's checkpoint loader. Each input is parsed as is and, so that
// arbitrary bytes get past the whole-file SHA-256, also with a valid format-4 header and digest
// around it. Whatever parses must serialize and parse back to the same bytes (the loader
// accepts only what the writer could have written); nothing may crash or allocate beyond the
// input's own size by much (libFuzzer's -rss_limit_mb catches that).
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/authenticator.h"
#include "server/checkpoint.h"

namespace {

void Require(bool property) {
  if (!property) __builtin_trap();
}

void Check(const std::string& bytes) {
  absl::StatusOr<lfl::Checkpoint> cp = lfl::ParseCheckpoint(bytes);
  if (!cp.ok()) return;
  const std::string again = lfl::SerializeCheckpoint(*cp);
  absl::StatusOr<lfl::Checkpoint> twice = lfl::ParseCheckpoint(again);
  Require(twice.ok());
  Require(lfl::SerializeCheckpoint(*twice) == again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string raw(reinterpret_cast<const char*>(data), size);
  Check(raw);
  std::string sealed("CLFL\x04\x00\x00\x00", 8);
  sealed += raw;
  const lfl::Sha256Digest d = lfl::Sha256(sealed);
  sealed.append(reinterpret_cast<const char*>(d.data()), d.size());
  Check(sealed);
  return 0;
}

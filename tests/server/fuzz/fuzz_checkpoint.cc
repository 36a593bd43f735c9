// libFuzzer target for the server's checkpoint loader. Each input is parsed as is and, so that
// arbitrary bytes get past the whole-file SHA-256, also with a valid format-4 header and digest
// around it. Whatever parses must serialize and parse back to the same bytes (the loader
// accepts only what the writer could have written); nothing may crash or allocate beyond the
// input's own size by much (libFuzzer's -rss_limit_mb catches that). Each input is also read
// as a checkpoint log (server/coordinator/checkpoint.h) on top of a small snapshot, raw and as one framed
// record: applying it must never crash, and whatever it applies leaves a snapshot that
// serializes and parses back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "server/coordinator/authenticator.h"
#include "server/coordinator/checkpoint.h"

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

lfl::Checkpoint Base() {
  lfl::Checkpoint cp;
  cp.generation = 0;
  cp.next_round = 2;
  lfl::TensorSet model;
  model.tensors.push_back({"w", {2, 3}, std::vector<float>(6, 0.5f), true});
  model.tensors.push_back({"b", {2}, std::vector<float>(2, 0.f), false});
  cp.global = model;
  for (int k = 0; k < 3; ++k) {
    lfl::Ticket c;
    c.mask = lfl::Mask::Full(model);
    cp.clients.push_back(c);
  }
  return cp;
}

void CheckLog(const std::string& log) {
  lfl::Checkpoint cp = Base();
  absl::StatusOr<int> applied = lfl::ApplyCheckpointLog(log, &cp);
  if (!applied.ok()) return;
  absl::StatusOr<lfl::Checkpoint> back = lfl::ParseCheckpoint(lfl::SerializeCheckpoint(cp));
  Require(back.ok());
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
  CheckLog(raw);
  // The same bytes as the payload of one well-framed record (past its SHA-256).
  std::string framed("LFLD", 4);
  const uint64_t n = raw.size();
  framed.append(reinterpret_cast<const char*>(&n), sizeof n);
  framed += raw;
  const lfl::Sha256Digest r = lfl::Sha256(raw);
  framed.append(reinterpret_cast<const char*>(r.data()), r.size());
  CheckLog(framed);
  return 0;
}

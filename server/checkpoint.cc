#include "server/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "fl/byte_io.h"
#include "quant/codec/codec.h"
#include "server/authenticator.h"

namespace lfl {
namespace {

constexpr uint32_t kMagic = 0x4c464c43;  // "LFLC"
// Version 2 adds each client's BSQ bits per layer; version 3 appends the SHA-256 of everything
// before it, checked before anything else is parsed; version 4 stores each distinct mask once
// (a table of masks, and per client an index into it), so K clients that share a ticket (every
// client starts with the full mask) cost one mask, not K. Versions 1-3 still load.
constexpr uint32_t kVersion = 4;
constexpr size_t kDigestBytes = 32;

absl::Status Corrupt(const std::string& what) {
  return absl::DataLossError(absl::StrCat("corrupt checkpoint: ", what));
}

bool ReadBlob(ByteReader& in, std::string_view* blob) {
  uint64_t n = 0;
  return in.U64(&n) && n <= in.remaining() && in.Bytes(static_cast<size_t>(n), blob);
}

}  // namespace

std::string SerializeCheckpoint(const Checkpoint& cp) {
  ByteWriter w;
  w.U32(kMagic);
  w.U32(kVersion);
  w.U64(cp.next_round);
  w.U64(cp.seed);
  w.U64(cp.totals_uplink);
  w.U64(cp.totals_downlink);
  w.U64(cp.totals_dense);
  const std::string global = SerializeTensorSet(cp.global);
  w.U64(global.size());
  w.Bytes(global);
  // The mask table: copies that share storage (Mask is copy-on-write) are written once.
  std::unordered_map<const void*, uint64_t> index;
  std::vector<const Mask*> table;
  std::vector<uint64_t> client_mask(cp.clients.size());
  for (size_t k = 0; k < cp.clients.size(); ++k) {
    const Mask& m = cp.clients[k].mask;
    auto [it, inserted] = index.emplace(m.storage_identity(), table.size());
    if (inserted) table.push_back(&m);
    client_mask[k] = it->second;
  }
  w.U64(table.size());
  for (const Mask* m : table) {
    const std::string mask = m->Serialize();
    w.U64(mask.size());
    w.Bytes(mask);
  }
  w.U64(cp.clients.size());
  for (size_t k = 0; k < cp.clients.size(); ++k) {
    const CheckpointClient& c = cp.clients[k];
    w.U64(client_mask[k]);
    w.U32(c.mask_version);
    w.F64(c.personalized_accuracy);
    w.I64(c.test_count);
    w.I64(c.num_samples);
    w.U32(static_cast<uint32_t>(c.layer_bits.size()));
    for (int b : c.layer_bits) w.U32(static_cast<uint32_t>(b));
  }
  std::string out = w.Take();
  const Sha256Digest digest = Sha256(out);
  out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  return out;
}

absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view bytes) {
  ByteReader in(bytes);
  uint32_t magic = 0, version = 0;
  if (!in.U32(&magic) || magic != kMagic) return Corrupt("bad magic (not a lotteryfl checkpoint)");
  if (!in.U32(&version) || version < 1 || version > kVersion) {
    return Corrupt(absl::StrCat("unsupported version ", version));
  }
  if (version >= 3) {
    if (bytes.size() < 8 + kDigestBytes) return Corrupt("truncated checksum");
    const std::string_view covered = bytes.substr(0, bytes.size() - kDigestBytes);
    const Sha256Digest digest = Sha256(covered);
    if (std::memcmp(digest.data(), bytes.data() + covered.size(), kDigestBytes) != 0) {
      return Corrupt("SHA-256 checksum mismatch (the file was changed or damaged)");
    }
    in = ByteReader(covered.substr(8));
  }
  Checkpoint cp;
  if (!in.U64(&cp.next_round) || !in.U64(&cp.seed) || !in.U64(&cp.totals_uplink) ||
      !in.U64(&cp.totals_downlink) || !in.U64(&cp.totals_dense)) {
    return Corrupt("truncated header");
  }
  std::string_view blob;
  if (!ReadBlob(in, &blob)) return Corrupt("truncated global model");
  absl::StatusOr<TensorSet> global = DeserializeTensorSet(blob);
  if (!global.ok()) return Corrupt(std::string(global.status().message()));
  cp.global = *std::move(global);
  std::vector<Mask> table;
  if (version >= 4) {
    uint64_t masks = 0;
    // Each table entry takes at least its 8-byte length, so the count is bounded by the input.
    if (!in.U64(&masks) || masks > in.remaining() / 8) return Corrupt("bad mask count");
    for (uint64_t i = 0; i < masks; ++i) {
      if (!ReadBlob(in, &blob)) return Corrupt(absl::StrCat("truncated mask ", i));
      absl::StatusOr<Mask> mask = Mask::Deserialize(blob);
      if (!mask.ok()) return Corrupt(std::string(mask.status().message()));
      table.push_back(*std::move(mask));
    }
  }
  uint64_t n = 0;
  if (!in.U64(&n) || n > (1u << 24)) return Corrupt("bad client count");
  for (uint64_t i = 0; i < n; ++i) {
    CheckpointClient c;
    if (version >= 4) {
      uint64_t m = 0;
      if (!in.U64(&m) || m >= table.size()) return Corrupt(absl::StrCat("bad mask index of client ", i));
      c.mask = table[m];
    } else {
      if (!ReadBlob(in, &blob)) return Corrupt(absl::StrCat("truncated mask of client ", i));
      absl::StatusOr<Mask> mask = Mask::Deserialize(blob);
      if (!mask.ok()) return Corrupt(std::string(mask.status().message()));
      c.mask = *std::move(mask);
    }
    if (!in.U32(&c.mask_version) || !in.F64(&c.personalized_accuracy) || !in.I64(&c.test_count) ||
        !in.I64(&c.num_samples)) {
      return Corrupt(absl::StrCat("truncated state of client ", i));
    }
    if (version >= 2) {
      uint32_t layers = 0;
      if (!in.U32(&layers) || layers > c.mask.num_tensors()) {
        return Corrupt(absl::StrCat("bad layer count of client ", i));
      }
      for (uint32_t l = 0; l < layers; ++l) {
        uint32_t bits = 0;
        if (!in.U32(&bits) || bits > static_cast<uint32_t>(codec::kMaxQuantBits)) return Corrupt(absl::StrCat("bad layer bits of client ", i));
        c.layer_bits.push_back(static_cast<int>(bits));
      }
    }
    cp.clients.push_back(std::move(c));
  }
  if (in.remaining() != 0) return Corrupt("trailing bytes");
  return cp;
}

absl::Status WriteCheckpointFile(const Checkpoint& cp, const std::string& path) {
  return WriteFileAtomically(path, SerializeCheckpoint(cp));
}

absl::StatusOr<Checkpoint> ReadCheckpointFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open checkpoint ", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  absl::StatusOr<Checkpoint> cp = ParseCheckpoint(buf.str());
  if (!cp.ok()) return absl::DataLossError(absl::StrCat(path, ": ", cp.status().message()));
  return cp;
}

}  // namespace lfl

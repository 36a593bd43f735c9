#include "server/coordinator/checkpoint.h"

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
#include "server/coordinator/authenticator.h"

namespace lfl {
namespace {

constexpr uint32_t kMagic = 0x4c464c43;        // "LFLC"
constexpr uint32_t kRecordMagic = 0x444c464c;  // "LFLD"
// Version 2 adds each client's BSQ bits per layer; version 3 appends the SHA-256 of everything
// before it, checked before anything else is parsed; version 4 stores each distinct mask once
// (a table of masks, and per client an index into it), so K clients that share a ticket (every
// client starts with the full mask) cost one mask, not K; version 5 adds the snapshot's
// generation (its log's records name it) and each client's reported global-masked accuracy.
// Versions 1-4 still load.
constexpr uint32_t kVersion = 5;
constexpr size_t kDigestBytes = 32;
constexpr uint64_t kMaxClients = uint64_t{1} << 24;

absl::Status Corrupt(const std::string& what) {
  return absl::DataLossError(absl::StrCat("corrupt checkpoint: ", what));
}

bool ReadBlob(ByteReader& in, std::string_view* blob) {
  uint64_t n = 0;
  return in.U64(&n) && n <= in.remaining() && in.Bytes(static_cast<size_t>(n), blob);
}

void WriteBlob(ByteWriter& w, std::string_view blob) {
  w.U64(blob.size());
  w.Bytes(blob);
}

// A client's state after its mask (which the snapshot writes by table index, a record inline).
void WriteClientFields(ByteWriter& w, const Ticket& c) {
  w.U32(c.mask_version);
  w.F64(c.personalized_accuracy);
  w.F64(c.global_masked_accuracy);
  w.I64(c.test_count);
  w.I64(c.num_samples);
  w.U32(static_cast<uint32_t>(c.layer_bits.size()));
  for (int b : c.layer_bits) w.U32(static_cast<uint32_t>(b));
}

absl::Status ReadClientFields(ByteReader& in, uint32_t version, const std::string& who, Ticket* c) {
  if (!in.U32(&c->mask_version) || !in.F64(&c->personalized_accuracy) ||
      (version >= 5 && !in.F64(&c->global_masked_accuracy)) || !in.I64(&c->test_count) ||
      !in.I64(&c->num_samples)) {
    return Corrupt(absl::StrCat("truncated state of ", who));
  }
  if (version >= 2) {
    uint32_t layers = 0;
    if (!in.U32(&layers) || layers > c->mask.num_tensors()) return Corrupt(absl::StrCat("bad layer count of ", who));
    for (uint32_t l = 0; l < layers; ++l) {
      uint32_t bits = 0;
      if (!in.U32(&bits) || bits > static_cast<uint32_t>(codec::kMaxQuantBits)) {
        return Corrupt(absl::StrCat("bad layer bits of ", who));
      }
      c->layer_bits.push_back(static_cast<int>(bits));
    }
  }
  c->density = c->mask.Density();
  return absl::OkStatus();
}

absl::StatusOr<Mask> ReadMask(ByteReader& in, const std::string& what) {
  std::string_view blob;
  if (!ReadBlob(in, &blob)) return Corrupt(absl::StrCat("truncated mask of ", what));
  absl::StatusOr<Mask> mask = Mask::Deserialize(blob);
  if (!mask.ok()) return Corrupt(absl::StrCat(what, ": ", mask.status().message()));
  return mask;
}

absl::StatusOr<TensorSet> ReadGlobal(ByteReader& in) {
  std::string_view blob;
  if (!ReadBlob(in, &blob)) return Corrupt("truncated global model");
  absl::StatusOr<TensorSet> global = DeserializeTensorSet(blob);
  if (!global.ok()) return Corrupt(std::string(global.status().message()));
  return global;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open checkpoint ", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return buf.str();
}

absl::Status SyncClose(int fd, const std::string& path, const char* what) {
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(err)));
  return absl::OkStatus();
}

}  // namespace

std::string CheckpointLogPath(const std::string& path) { return path + ".log"; }

std::string SerializeCheckpoint(const Checkpoint& cp) {
  ByteWriter w;
  w.U32(kMagic);
  w.U32(kVersion);
  w.U64(cp.generation);
  w.U64(cp.next_round);
  w.U64(cp.seed);
  w.U64(cp.totals_uplink);
  w.U64(cp.totals_downlink);
  w.U64(cp.totals_dense);
  WriteBlob(w, SerializeTensorSet(cp.global));
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
  for (const Mask* m : table) WriteBlob(w, m->Serialize());
  w.U64(cp.clients.size());
  for (size_t k = 0; k < cp.clients.size(); ++k) {
    w.U64(client_mask[k]);
    WriteClientFields(w, cp.clients[k]);
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
  if ((version >= 5 && !in.U64(&cp.generation)) || !in.U64(&cp.next_round) || !in.U64(&cp.seed) ||
      !in.U64(&cp.totals_uplink) || !in.U64(&cp.totals_downlink) || !in.U64(&cp.totals_dense)) {
    return Corrupt("truncated header");
  }
  absl::StatusOr<TensorSet> global = ReadGlobal(in);
  if (!global.ok()) return global.status();
  cp.global = *std::move(global);
  std::vector<Mask> table;
  if (version >= 4) {
    uint64_t masks = 0;
    // Each table entry takes at least its 8-byte length, so the count is bounded by the input.
    if (!in.U64(&masks) || masks > in.remaining() / 8) return Corrupt("bad mask count");
    for (uint64_t i = 0; i < masks; ++i) {
      absl::StatusOr<Mask> mask = ReadMask(in, absl::StrCat("table entry ", i));
      if (!mask.ok()) return mask.status();
      table.push_back(*std::move(mask));
    }
  }
  uint64_t n = 0;
  if (!in.U64(&n) || n > kMaxClients) return Corrupt("bad client count");
  for (uint64_t i = 0; i < n; ++i) {
    Ticket c;
    const std::string who = absl::StrCat("client ", i);
    if (version >= 4) {
      uint64_t m = 0;
      if (!in.U64(&m) || m >= table.size()) return Corrupt(absl::StrCat("bad mask index of ", who));
      c.mask = table[m];
    } else {
      absl::StatusOr<Mask> mask = ReadMask(in, who);
      if (!mask.ok()) return mask.status();
      c.mask = *std::move(mask);
    }
    if (absl::Status s = ReadClientFields(in, version, who, &c); !s.ok()) return s;
    cp.clients.push_back(std::move(c));
  }
  if (in.remaining() != 0) return Corrupt("trailing bytes");
  return cp;
}

std::string SerializeDeltaRecord(const CheckpointDelta& d) {
  ByteWriter w;
  w.U64(d.generation);
  w.U64(d.next_round);
  w.U64(d.totals_uplink);
  w.U64(d.totals_downlink);
  w.U64(d.totals_dense);
  WriteBlob(w, SerializeTensorSet(d.global));
  w.U64(d.clients.size());
  for (const auto& [id, c] : d.clients) {
    w.I64(id);
    WriteBlob(w, c.mask.Serialize());
    WriteClientFields(w, c);
  }
  const std::string payload = w.Take();
  ByteWriter frame;
  frame.U32(kRecordMagic);
  frame.U64(payload.size());
  frame.Bytes(payload);
  const Sha256Digest digest = Sha256(payload);
  frame.Bytes(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
  return frame.Take();
}

absl::StatusOr<int> ApplyCheckpointLog(std::string_view log, Checkpoint* cp) {
  int applied = 0;
  size_t offset = 0;
  for (int record = 1; offset < log.size(); ++record) {
    ByteReader frame(log.substr(offset));
    uint32_t magic = 0;
    uint64_t length = 0;
    // A record that runs past the end of the file was being appended when the process died.
    if (!frame.U32(&magic) || (magic == kRecordMagic && !frame.U64(&length))) break;
    if (magic != kRecordMagic) {
      // A tail of zeros is a crash that extended the file before its data reached the disk.
      if (log.find_first_not_of('\0', offset) == std::string_view::npos) break;
      return Corrupt(absl::StrCat("log record ", record, ": bad magic"));
    }
    if (length > frame.remaining() || frame.remaining() - length < kDigestBytes) break;
    std::string_view payload, digest;
    frame.Bytes(static_cast<size_t>(length), &payload);
    frame.Bytes(kDigestBytes, &digest);
    const size_t end = offset + 12 + static_cast<size_t>(length) + kDigestBytes;
    const Sha256Digest want = Sha256(payload);
    if (std::memcmp(want.data(), digest.data(), kDigestBytes) != 0) {
      if (end == log.size()) break;  // the torn last record (its tail never reached the disk)
      return Corrupt(absl::StrCat("log record ", record, ": SHA-256 checksum mismatch"));
    }
    offset = end;
    ByteReader in(payload);
    CheckpointDelta d;
    if (!in.U64(&d.generation) || !in.U64(&d.next_round) || !in.U64(&d.totals_uplink) ||
        !in.U64(&d.totals_downlink) || !in.U64(&d.totals_dense)) {
      return Corrupt(absl::StrCat("log record ", record, ": truncated header"));
    }
    if (d.generation != cp->generation) continue;  // left over from an older snapshot
    if (d.next_round <= cp->next_round) {
      return Corrupt(absl::StrCat("log record ", record, ": round ", d.next_round, " does not follow ",
                                  cp->next_round));
    }
    absl::StatusOr<TensorSet> global = ReadGlobal(in);
    if (!global.ok()) return global.status();
    if (absl::Status s = global->CheckLayout(cp->global); !s.ok()) {
      return Corrupt(absl::StrCat("log record ", record, ": ", s.message()));
    }
    uint64_t n = 0;
    if (!in.U64(&n) || n > cp->clients.size()) return Corrupt(absl::StrCat("log record ", record, ": bad client count"));
    std::vector<std::pair<int64_t, Ticket>> clients;
    for (uint64_t i = 0; i < n; ++i) {
      int64_t id = -1;
      if (!in.I64(&id) || id < 0 || static_cast<uint64_t>(id) >= cp->clients.size()) {
        return Corrupt(absl::StrCat("log record ", record, ": bad client id"));
      }
      const std::string who = absl::StrCat("client ", id, " in log record ", record);
      Ticket c;
      absl::StatusOr<Mask> mask = ReadMask(in, who);
      if (!mask.ok()) return mask.status();
      c.mask = *std::move(mask);
      if (absl::Status s = ReadClientFields(in, kVersion, who, &c); !s.ok()) return s;
      clients.emplace_back(id, std::move(c));
    }
    if (in.remaining() != 0) return Corrupt(absl::StrCat("log record ", record, ": trailing bytes"));
    cp->next_round = d.next_round;
    cp->global = *std::move(global);
    cp->totals_uplink = d.totals_uplink;
    cp->totals_downlink = d.totals_downlink;
    cp->totals_dense = d.totals_dense;
    for (auto& [id, c] : clients) cp->clients[static_cast<size_t>(id)] = std::move(c);
    ++applied;
  }
  return applied;
}

absl::Status WriteCheckpointFile(const Checkpoint& cp, const std::string& path) {
  if (absl::Status s = WriteFileAtomically(path, SerializeCheckpoint(cp)); !s.ok()) return s;
  // The log's records belong to the previous snapshot now; empty it (if a crash comes first,
  // their generation no longer matches and they are ignored).
  const std::string log = CheckpointLogPath(path);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot empty ", log, ": ", std::strerror(errno)));
  return SyncClose(fd, log, "sync");
}

absl::Status AppendCheckpointRecord(const CheckpointDelta& delta, const std::string& path) {
  const std::string log = CheckpointLogPath(path);
  const std::string record = SerializeDeltaRecord(delta);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", log, ": ", std::strerror(errno)));
  const off_t start = ::lseek(fd, 0, SEEK_END);
  if (start < 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot seek ", log, ": ", std::strerror(err)));
  }
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      // Cut the partial record off, so that a retry does not leave it in the middle of the log.
      (void)!::ftruncate(fd, start);
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot append to ", log, ": ", std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    (void)!::ftruncate(fd, start);
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot sync ", log, ": ", std::strerror(err)));
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> ReadCheckpointFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<Checkpoint> cp = ParseCheckpoint(*bytes);
  if (!cp.ok()) return absl::DataLossError(absl::StrCat(path, ": ", cp.status().message()));
  const std::string log = CheckpointLogPath(path);
  absl::StatusOr<std::string> records = ReadWholeFile(log);
  if (absl::IsNotFound(records.status())) return cp;
  if (!records.ok()) return records.status();
  absl::StatusOr<int> applied = ApplyCheckpointLog(*records, &*cp);
  if (!applied.ok()) return absl::DataLossError(absl::StrCat(log, ": ", applied.status().message()));
  return cp;
}

}  // namespace lfl

#include "server/coordinator/authenticator.h"
#include "server/coordinator/checkpoint.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fl/byte_io.h"

namespace lfl {
namespace {

constexpr uint32_t kMagic = 0x4c464c43;  // "LFLC"

// Three tensors, two of them prunable: a client's layer_bits has (at most) two entries.
TensorSet Model() {
  TensorSet s;
  s.tensors.push_back({"a.weight", {3, 4}, std::vector<float>(12), true});
  s.tensors.push_back({"a.bias", {3}, std::vector<float>(3), false});
  s.tensors.push_back({"b.weight", {2, 3}, std::vector<float>(6), true});
  for (size_t t = 0; t < s.size(); ++t) {
    for (size_t i = 0; i < s.tensors[t].values.size(); ++i) {
      s.tensors[t].values[i] = 0.1f * static_cast<float>(t + 1) - 0.01f * static_cast<float>(i);
    }
  }
  return s;
}

Checkpoint Sample(const std::vector<std::vector<int>>& bits) {
  Checkpoint cp;
  cp.next_round = 7;
  cp.seed = 1234;
  cp.global = Model();
  cp.totals_uplink = 111;
  cp.totals_downlink = 222;
  cp.totals_dense = 333;
  for (size_t k = 0; k < bits.size(); ++k) {
    Ticket c;
    c.mask = Mask::Full(cp.global);
    c.mask.Set(0, static_cast<int64_t>(k), false);
    if (k % 2 == 1) c.mask.Set(2, 5, false);
    c.mask_version = static_cast<uint32_t>(3 * k + 1);
    c.personalized_accuracy = 0.25 + 0.125 * static_cast<double>(k);
    c.test_count = 40 + static_cast<int64_t>(k);
    c.num_samples = 600 + static_cast<int64_t>(k);
    c.layer_bits = bits[k];
    cp.clients.push_back(c);
  }
  return cp;
}

// The version-1 format (before per-client bits), written field by field; `bits_anyway` appends
// each client's bits as version 2 would (a v1 header over a v2 body).
std::string SerializeV1(const Checkpoint& cp, uint32_t version = 1, bool bits_anyway = false) {
  ByteWriter w;
  w.U32(kMagic);
  w.U32(version);
  w.U64(cp.next_round);
  w.U64(cp.seed);
  w.U64(cp.totals_uplink);
  w.U64(cp.totals_downlink);
  w.U64(cp.totals_dense);
  const std::string global = SerializeTensorSet(cp.global);
  w.U64(global.size());
  w.Bytes(global);
  w.U64(cp.clients.size());
  for (const Ticket& c : cp.clients) {
    const std::string mask = c.mask.Serialize();
    w.U64(mask.size());
    w.Bytes(mask);
    w.U32(c.mask_version);
    w.F64(c.personalized_accuracy);
    w.I64(c.test_count);
    w.I64(c.num_samples);
    if (bits_anyway) {
      w.U32(static_cast<uint32_t>(c.layer_bits.size()));
      for (int b : c.layer_bits) w.U32(static_cast<uint32_t>(b));
    }
  }
  return w.Take();
}

// Version 3 is the version 2 body followed by the SHA-256 of everything before it.
std::string WithDigest(std::string bytes) {
  const Sha256Digest d = Sha256(bytes);
  bytes.append(reinterpret_cast<const char*>(d.data()), d.size());
  return bytes;
}

void ExpectSameExceptBits(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.next_round, b.next_round);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.totals_uplink, b.totals_uplink);
  EXPECT_EQ(a.totals_downlink, b.totals_downlink);
  EXPECT_EQ(a.totals_dense, b.totals_dense);
  EXPECT_EQ(SerializeTensorSet(a.global), SerializeTensorSet(b.global));
  ASSERT_EQ(a.clients.size(), b.clients.size());
  for (size_t k = 0; k < a.clients.size(); ++k) {
    EXPECT_EQ(a.clients[k].mask, b.clients[k].mask) << k;
    EXPECT_EQ(a.clients[k].mask_version, b.clients[k].mask_version) << k;
    EXPECT_EQ(a.clients[k].personalized_accuracy, b.clients[k].personalized_accuracy) << k;
    EXPECT_EQ(a.clients[k].test_count, b.clients[k].test_count) << k;
    EXPECT_EQ(a.clients[k].num_samples, b.clients[k].num_samples) << k;
  }
}

bool IsCorrupt(const absl::Status& s) {
  return absl::IsDataLoss(s) && s.message().find("corrupt checkpoint") != std::string::npos;
}

TEST(CheckpointTest, RoundTripKeepsLayerBits) {
  const std::vector<std::vector<int>> bits = {{3, 5}, {}, {8, 0}, {1}};
  const Checkpoint cp = Sample(bits);
  absl::StatusOr<Checkpoint> back = ParseCheckpoint(SerializeCheckpoint(cp));
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameExceptBits(*back, cp);
  for (size_t k = 0; k < bits.size(); ++k) EXPECT_EQ(back->clients[k].layer_bits, bits[k]) << k;

  // Through a file as well.
  const std::string path =
      (std::filesystem::temp_directory_path() / ("lfl_ckpt_" + std::to_string(::getpid()) + ".bin")).string();
  ASSERT_TRUE(WriteCheckpointFile(cp, path).ok());
  absl::StatusOr<Checkpoint> read = ReadCheckpointFile(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameExceptBits(*read, cp);
  for (size_t k = 0; k < bits.size(); ++k) EXPECT_EQ(read->clients[k].layer_bits, bits[k]) << k;
}

TEST(CheckpointTest, SerializedBitsChangeTheBytes) {
  // The bits are really written (not, say, dropped and re-derived): different bits, different bytes.
  EXPECT_NE(SerializeCheckpoint(Sample({{3, 5}})), SerializeCheckpoint(Sample({{3, 6}})));
  EXPECT_NE(SerializeCheckpoint(Sample(std::vector<std::vector<int>>(1))), SerializeCheckpoint(Sample({{3}})));
}

TEST(CheckpointTest, VersionOneParsesWithEmptyBits) {
  const Checkpoint cp = Sample({{3, 5}, {2}, {}});
  const std::string v1 = SerializeV1(cp);
  absl::StatusOr<Checkpoint> back = ParseCheckpoint(v1);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameExceptBits(*back, cp);
  for (const Ticket& c : back->clients) EXPECT_TRUE(c.layer_bits.empty());
  // Version 3 of the same state is exactly 4 bytes per client (an empty count) and a 32-byte
  // SHA-256 longer, and loads the same.
  const std::string v3 = WithDigest(SerializeV1(Sample({{}, {}, {}}), 3, true));
  EXPECT_EQ(v3.size(), v1.size() + 4 * cp.clients.size() + 32);
  absl::StatusOr<Checkpoint> back3 = ParseCheckpoint(v3);
  ASSERT_TRUE(back3.ok()) << back3.status();
  ExpectSameExceptBits(*back3, cp);
}

TEST(CheckpointTest, BodyMustMatchTheDeclaredVersion) {
  const Checkpoint cp = Sample({{3, 5}, {2}});
  // A v1 header over a body with bits, and a v2 header over a body without them.
  EXPECT_TRUE(IsCorrupt(ParseCheckpoint(SerializeV1(cp, 1, /*bits_anyway=*/true)).status()));
  EXPECT_TRUE(IsCorrupt(ParseCheckpoint(SerializeV1(cp, 2, /*bits_anyway=*/false)).status()));
  // Version 2 files still load; version 3 (what SerializeCheckpoint writes) is the v2 body
  // under a v3 header, followed by its SHA-256.
  absl::StatusOr<Checkpoint> v2 = ParseCheckpoint(SerializeV1(cp, 2, /*bits_anyway=*/true));
  ASSERT_TRUE(v2.ok()) << v2.status();
  ExpectSameExceptBits(*v2, cp);
  absl::StatusOr<Checkpoint> v3 = ParseCheckpoint(WithDigest(SerializeV1(cp, 3, /*bits_anyway=*/true)));
  ASSERT_TRUE(v3.ok()) << v3.status();
  ExpectSameExceptBits(*v3, cp);
  // A v3 header without (or with a wrong) digest is refused.
  EXPECT_TRUE(IsCorrupt(ParseCheckpoint(SerializeV1(cp, 3, true)).status()));
}

TEST(CheckpointTest, SharedMasksAreStoredOnce) {
  // 1000 clients holding copies of one mask, and one client with its own: the file holds two
  // masks, and every client reads back its own ticket.
  Checkpoint cp = Sample({{}});
  const Mask shared = cp.clients[0].mask;
  Mask own = shared;
  own.Set(0, 0, !own.Get(0, 0));
  cp.clients.assign(1000, cp.clients[0]);
  cp.clients[7].mask = own;
  const std::string bytes = SerializeCheckpoint(cp);
  const size_t one_mask = shared.Serialize().size();
  EXPECT_LT(bytes.size(), 3 * one_mask + 1000 * 48 + 4096) << "every client's mask was written out";
  absl::StatusOr<Checkpoint> back = ParseCheckpoint(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->clients.size(), 1000u);
  for (size_t k = 0; k < 1000; ++k) EXPECT_EQ(back->clients[k].mask, k == 7 ? own : shared) << k;
}

TEST(CheckpointTest, UnknownVersionsAreRefused) {
  const Checkpoint cp = Sample({{3}});
  for (uint32_t version : {0u, 5u, 0xffffffffu}) {
    absl::Status s = ParseCheckpoint(SerializeV1(cp, version, true)).status();
    EXPECT_TRUE(IsCorrupt(s)) << version << ": " << s;
  }
}

TEST(CheckpointTest, BitsAboveEightAreRefused) {
  ASSERT_TRUE(ParseCheckpoint(SerializeCheckpoint(Sample({{8, 8}}))).ok());
  for (int bad : {9, 32, -1}) {
    absl::Status s = ParseCheckpoint(SerializeCheckpoint(Sample({{3, 4}, {4, bad}}))).status();
    EXPECT_TRUE(IsCorrupt(s)) << bad << ": " << s;
  }
}

TEST(CheckpointTest, TooManyLayersAreRefused) {
  // More entries than the model has tensors.
  absl::Status s = ParseCheckpoint(SerializeCheckpoint(Sample({{3, 3, 3, 3}}))).status();
  EXPECT_TRUE(IsCorrupt(s)) << s;
  // An absurd count is refused before anything is read for it.
  std::string bytes = SerializeV1(Sample(std::vector<std::vector<int>>(1)), 2, true);
  ASSERT_GE(bytes.size(), 4u);
  for (size_t i = bytes.size() - 4; i < bytes.size(); ++i) bytes[i] = '\xff';  // the last client's count
  s = ParseCheckpoint(bytes).status();
  EXPECT_TRUE(IsCorrupt(s)) << s;
}

TEST(CheckpointTest, EveryTruncationIsRefused) {
  const std::string bytes = SerializeCheckpoint(Sample({{3, 5}, {7}}));
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::Status s = ParseCheckpoint(std::string_view(bytes).substr(0, n)).status();
    ASSERT_TRUE(absl::IsDataLoss(s)) << "prefix of " << n << " bytes: " << s;
  }
  EXPECT_TRUE(IsCorrupt(ParseCheckpoint(bytes + std::string(4, '\0')).status()));
}

// --- the log: a snapshot plus one record per round ---------------------------------------

class CheckpointLogTest : public ::testing::Test {
 protected:
  void TearDown() override {
    std::filesystem::remove(path_);
    std::filesystem::remove(CheckpointLogPath(path_));
  }
  // Round `round`'s record: client `changed` gets a new ticket and accuracy, the model moves.
  static CheckpointDelta Delta(const Checkpoint& base, uint64_t round, int64_t changed) {
    CheckpointDelta d;
    d.generation = base.generation;
    d.next_round = round + 1;
    d.global = base.global;
    d.global.tensors[0].values[0] = static_cast<float>(round);
    d.totals_uplink = 1000 * round;
    d.totals_downlink = 2000 * round;
    d.totals_dense = 3000 * round;
    Ticket c = base.clients[static_cast<size_t>(changed)];
    c.mask.Set(2, static_cast<int64_t>(round % 6), false);
    c.mask_version += 1;
    c.personalized_accuracy = 0.5 + 0.01 * static_cast<double>(round);
    c.global_masked_accuracy = 0.25;
    c.layer_bits = {4, 3};
    d.clients.emplace_back(changed, c);
    return d;
  }
  // What the state is after applying `d` to `cp` (the expected result, built field by field).
  static void Apply(const CheckpointDelta& d, Checkpoint* cp) {
    cp->next_round = d.next_round;
    cp->global = d.global;
    cp->totals_uplink = d.totals_uplink;
    cp->totals_downlink = d.totals_downlink;
    cp->totals_dense = d.totals_dense;
    for (const auto& [id, c] : d.clients) cp->clients[static_cast<size_t>(id)] = c;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buf;
    buf << in.rdbuf();
    return buf.str();
  }
  static void Write(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }

  std::string path_ =
      (std::filesystem::temp_directory_path() / ("lfl_ckptlog_" + std::to_string(::getpid()) + ".bin")).string();
};

TEST_F(CheckpointLogTest, SnapshotPlusRecordsReadsBackAsTheLatestState) {
  Checkpoint cp = Sample({{3, 5}, {}, {8, 8}});
  cp.generation = 7;
  ASSERT_TRUE(WriteCheckpointFile(cp, path_).ok());
  Checkpoint expect = cp;
  for (uint64_t round = 7; round <= 9; ++round) {
    const CheckpointDelta d = Delta(expect, round, static_cast<int64_t>(round % 3));
    ASSERT_TRUE(AppendCheckpointRecord(d, path_).ok());
    Apply(d, &expect);
  }
  absl::StatusOr<Checkpoint> read = ReadCheckpointFile(path_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->next_round, 10u);
  EXPECT_EQ(SerializeCheckpoint(*read), SerializeCheckpoint(expect));
  // A record costs what changed: one client, not all three.
  EXPECT_LT(SerializeDeltaRecord(Delta(cp, 7, 0)).size(),
            SerializeTensorSet(cp.global).size() + 2 * cp.clients[0].mask.Serialize().size() + 200);
}

TEST_F(CheckpointLogTest, ANewSnapshotEmptiesTheLogAndStaleRecordsAreIgnored) {
  Checkpoint cp = Sample({{3, 5}, {7}});
  cp.generation = 1;
  ASSERT_TRUE(WriteCheckpointFile(cp, path_).ok());
  const CheckpointDelta d = Delta(cp, 7, 1);
  ASSERT_TRUE(AppendCheckpointRecord(d, path_).ok());
  const std::string old_log = Read(CheckpointLogPath(path_));
  ASSERT_FALSE(old_log.empty());
  Checkpoint next = cp;
  Apply(d, &next);
  next.generation = 2;
  ASSERT_TRUE(WriteCheckpointFile(next, path_).ok());
  EXPECT_TRUE(Read(CheckpointLogPath(path_)).empty());
  // A crash between the snapshot's rename and the log's truncation leaves generation-1 records.
  Write(CheckpointLogPath(path_), old_log);
  absl::StatusOr<Checkpoint> read = ReadCheckpointFile(path_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(SerializeCheckpoint(*read), SerializeCheckpoint(next));
}

TEST_F(CheckpointLogTest, ATornLastRecordIsIgnoredDamageElsewhereIsDataLoss) {
  Checkpoint cp = Sample({{3, 5}, {7}});
  cp.generation = 3;
  ASSERT_TRUE(WriteCheckpointFile(cp, path_).ok());
  const CheckpointDelta first = Delta(cp, 7, 0);
  Checkpoint after_first = cp;
  Apply(first, &after_first);
  const CheckpointDelta second = Delta(after_first, 8, 1);
  const std::string r1 = SerializeDeltaRecord(first), r2 = SerializeDeltaRecord(second);
  // Every prefix of the second record (a crash during its append) reads as the first alone.
  for (size_t n = 0; n < r2.size(); n += 97) {
    Write(CheckpointLogPath(path_), r1 + r2.substr(0, n));
    absl::StatusOr<Checkpoint> read = ReadCheckpointFile(path_);
    ASSERT_TRUE(read.ok()) << n << ": " << read.status();
    EXPECT_EQ(read->next_round, 8u) << n;
  }
  Write(CheckpointLogPath(path_), r1 + std::string(64, '\0'));
  EXPECT_TRUE(ReadCheckpointFile(path_).ok()) << "a zero tail is a torn append";
  // A flipped byte inside the first record, with the second after it, is damage.
  std::string bad = r1 + r2;
  bad[r1.size() / 2] ^= 0x10;
  Write(CheckpointLogPath(path_), bad);
  absl::Status s = ReadCheckpointFile(path_).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  // A record that does not advance the round, or names a client the snapshot does not have.
  Write(CheckpointLogPath(path_), r1 + r1);
  EXPECT_TRUE(absl::IsDataLoss(ReadCheckpointFile(path_).status()));
  CheckpointDelta foreign = first;
  foreign.clients[0].first = 5;
  Write(CheckpointLogPath(path_), SerializeDeltaRecord(foreign));
  EXPECT_TRUE(absl::IsDataLoss(ReadCheckpointFile(path_).status()));
}

}  // namespace
}  // namespace lfl

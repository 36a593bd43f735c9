#include "fl/tensor_set.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fl/byte_io.h"

namespace lfl {
namespace {

constexpr uint32_t kTensorSetMagic = 0x544c464c;  // "LFLT"
constexpr uint32_t kTensorSetVersion = 1;
constexpr uint32_t kMaxRank = 16;

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status Corrupt(absl::string_view detail) {
  return absl::DataLossError(absl::StrCat("TensorSet: ", detail));
}

void WriteTensor(const NamedTensor& t, ByteWriter* w) {
  w->U64(t.name.size());
  w->Bytes(t.name);
  w->U8(t.prunable ? 1 : 0);
  w->U32(static_cast<uint32_t>(t.shape.size()));
  for (int64_t d : t.shape) w->I64(d);
  w->U64(t.values.size());
  for (float v : t.values) w->F32(v);
}

// Reads a shape and returns its element count, refusing negative dims and overflow.
absl::StatusOr<int64_t> ReadShape(ByteReader* r, std::vector<int64_t>* shape) {
  uint32_t rank;
  if (!r->U32(&rank)) return Corrupt("truncated rank");
  if (rank > kMaxRank) return Corrupt(absl::StrCat("rank ", rank, " exceeds ", kMaxRank));
  int64_t numel = 1;
  for (uint32_t i = 0; i < rank; ++i) {
    int64_t d;
    if (!r->I64(&d)) return Corrupt("truncated shape");
    if (d < 0) return Corrupt(absl::StrCat("negative dimension ", d));
    if (d > 0 && numel > std::numeric_limits<int64_t>::max() / d) {
      return Corrupt("shape overflows int64");
    }
    numel *= d;
    shape->push_back(d);
  }
  return numel;
}

absl::StatusOr<NamedTensor> ReadTensor(ByteReader* r) {
  NamedTensor t;
  uint64_t name_len;
  std::string_view name;
  if (!r->U64(&name_len) || name_len > r->remaining() || !r->Bytes(name_len, &name)) {
    return Corrupt("truncated tensor name");
  }
  t.name = std::string(name);
  uint8_t prunable;
  if (!r->U8(&prunable) || prunable > 1) return Corrupt(absl::StrCat(t.name, ": bad flags"));
  t.prunable = prunable == 1;
  absl::StatusOr<int64_t> numel = ReadShape(r, &t.shape);
  if (!numel.ok()) return numel.status();
  uint64_t count;
  if (!r->U64(&count)) return Corrupt(absl::StrCat(t.name, ": truncated value count"));
  if (count != 0 && count != static_cast<uint64_t>(*numel)) {
    return Corrupt(absl::StrCat(t.name, ": ", count, " values for shape ", ShapeString(t.shape)));
  }
  if (count > r->remaining() / sizeof(float)) {
    return Corrupt(absl::StrCat(t.name, ": truncated values"));
  }
  t.values.resize(count);
  for (float& v : t.values) r->F32(&v);
  return t;
}

}  // namespace

int64_t NamedTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const NamedTensor* TensorSet::Find(std::string_view name) const {
  for (const NamedTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

int64_t TensorSet::TotalElements() const {
  int64_t n = 0;
  for (const NamedTensor& t : tensors) n += t.numel();
  return n;
}

int64_t TensorSet::PrunableElements() const {
  int64_t n = 0;
  for (const NamedTensor& t : tensors) {
    if (t.prunable) n += t.numel();
  }
  return n;
}

bool TensorSet::SameLayout(const TensorSet& other) const {
  if (size() != other.size()) return false;
  for (size_t i = 0; i < size(); ++i) {
    const NamedTensor& a = tensors[i];
    const NamedTensor& b = other.tensors[i];
    if (a.name != b.name || a.shape != b.shape || a.prunable != b.prunable) return false;
  }
  return true;
}

absl::Status TensorSet::CheckLayout(const TensorSet& expected) const {
  if (size() != expected.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected ", expected.size(), " tensors, got ", size()));
  }
  for (size_t i = 0; i < size(); ++i) {
    const NamedTensor& got = tensors[i];
    const NamedTensor& want = expected.tensors[i];
    if (got.name != want.name) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", i, ": expected \"", want.name, "\", got \"", got.name, "\""));
    }
    if (got.shape != want.shape) {
      return absl::InvalidArgumentError(absl::StrCat(got.name, ": expected shape ",
                                                     ShapeString(want.shape), ", got ",
                                                     ShapeString(got.shape)));
    }
    if (got.prunable != want.prunable) {
      return absl::InvalidArgumentError(absl::StrCat(got.name, ": prunable flag differs"));
    }
    if (static_cast<int64_t>(got.values.size()) != got.numel()) {
      return absl::InvalidArgumentError(absl::StrCat(got.name, ": ", got.values.size(),
                                                     " values for shape ", ShapeString(got.shape)));
    }
  }
  return absl::OkStatus();
}

absl::Status TensorSet::CheckFinite() const {
  for (const NamedTensor& t : tensors) {
    for (size_t i = 0; i < t.values.size(); ++i) {
      if (!std::isfinite(t.values[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat(t.name, "[", i, "] is not finite (", t.values[i], ")"));
      }
    }
  }
  return absl::OkStatus();
}

TensorSet TensorSet::ZerosLike() const {
  TensorSet zeros;
  zeros.tensors.reserve(size());
  for (const NamedTensor& t : tensors) {
    zeros.tensors.push_back({t.name, t.shape, std::vector<float>(t.numel(), 0.0f), t.prunable});
  }
  return zeros;
}

std::string SerializeTensorSet(const TensorSet& set) {
  ByteWriter w;
  w.U64(set.size());
  for (const NamedTensor& t : set.tensors) WriteTensor(t, &w);
  return SealEnvelope(kTensorSetMagic, kTensorSetVersion, w.Take());
}

absl::StatusOr<TensorSet> DeserializeTensorSet(std::string_view bytes) {
  absl::StatusOr<std::string_view> body =
      OpenEnvelope(bytes, kTensorSetMagic, kTensorSetVersion, "TensorSet");
  if (!body.ok()) return body.status();
  ByteReader r(*body);
  uint64_t count;
  if (!r.U64(&count)) return Corrupt("truncated tensor count");
  TensorSet set;
  for (uint64_t i = 0; i < count; ++i) {
    absl::StatusOr<NamedTensor> t = ReadTensor(&r);
    if (!t.ok()) return t.status();
    set.tensors.push_back(*std::move(t));
  }
  if (r.remaining() != 0) return Corrupt(absl::StrCat(r.remaining(), " trailing bytes"));
  return set;
}

}  // namespace lfl

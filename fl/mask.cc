#include "fl/mask.h"

#include <bitset>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "fl/byte_io.h"

namespace lfl {
namespace {

constexpr uint32_t kMaskMagic = 0x4d4c464c;  // "LFLM"
constexpr uint32_t kMaskVersion = 1;

// Mask of the valid bits of the last word of a tensor with `numel` elements.
uint64_t LastWordMask(int64_t numel) {
  int rem = static_cast<int>(numel % 64);
  return rem == 0 ? ~0ull : (1ull << rem) - 1;
}

int64_t PopCount(const std::vector<uint64_t>& words) {
  int64_t n = 0;
  for (uint64_t w : words) n += static_cast<int64_t>(std::bitset<64>(w).count());
  return n;
}

absl::Status Corrupt(absl::string_view detail) {
  return absl::DataLossError(absl::StrCat("Mask: ", detail));
}

}  // namespace

Mask Mask::Full(const TensorSet& layout) {
  Mask mask;
  mask.mutable_tensors().reserve(layout.size());
  for (const NamedTensor& t : layout.tensors) {
    TensorBits bits{t.prunable, t.numel(), {}};
    if (t.prunable && bits.numel > 0) {
      bits.words.assign(MaskWordCount(bits.numel), ~0ull);
      bits.words.back() &= LastWordMask(bits.numel);
    }
    mask.mutable_tensors().push_back(std::move(bits));
  }
  return mask;
}

bool Mask::Get(size_t tensor, int64_t i) const {
  const TensorBits& t = tensors()[tensor];
  assert(i >= 0 && i < t.numel);
  if (!t.prunable) return true;
  return (t.words[i / 64] >> (i % 64)) & 1;
}

void Mask::Set(size_t tensor, int64_t i, bool keep) {
  TensorBits& t = mutable_tensors()[tensor];
  assert(t.prunable && i >= 0 && i < t.numel);
  uint64_t bit = 1ull << (i % 64);
  if (keep) {
    t.words[i / 64] |= bit;
  } else {
    t.words[i / 64] &= ~bit;
  }
}

int64_t Mask::Kept(size_t tensor) const {
  const TensorBits& t = tensors()[tensor];
  return t.prunable ? PopCount(t.words) : t.numel;
}

double Mask::Density() const {
  int64_t kept = 0, total = 0;
  for (size_t i = 0; i < tensors().size(); ++i) {
    if (!tensors()[i].prunable) continue;
    kept += Kept(i);
    total += tensors()[i].numel;
  }
  return total == 0 ? 1.0 : static_cast<double>(kept) / static_cast<double>(total);
}

double Mask::Density(size_t tensor) const {
  const TensorBits& t = tensors()[tensor];
  if (!t.prunable || t.numel == 0) return 1.0;
  return static_cast<double>(Kept(tensor)) / static_cast<double>(t.numel);
}

absl::Status Mask::SetWords(size_t tensor, std::vector<uint64_t> words) {
  if (tensor >= tensors().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask tensor ", tensor, " out of range (", tensors().size(), " tensors)"));
  }
  TensorBits& t = mutable_tensors()[tensor];
  if (!t.prunable) {
    return absl::InvalidArgumentError(absl::StrCat("mask tensor ", tensor, " is not prunable"));
  }
  if (words.size() != MaskWordCount(t.numel)) {
    return absl::InvalidArgumentError(absl::StrCat("mask tensor ", tensor, ": ", words.size(),
                                                   " words for ", t.numel, " elements"));
  }
  if (!words.empty()) words.back() &= LastWordMask(t.numel);
  t.words = std::move(words);
  return absl::OkStatus();
}

absl::Status Mask::CheckMatches(const TensorSet& set) const {
  if (set.size() != tensors().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mask has ", tensors().size(), " tensors, model has ", set.size()));
  }
  for (size_t i = 0; i < tensors().size(); ++i) {
    const NamedTensor& t = set.tensors[i];
    bool values_ok = t.values.empty() || static_cast<int64_t>(t.values.size()) == t.numel();
    if (t.prunable != tensors()[i].prunable || t.numel() != tensors()[i].numel || !values_ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("mask does not match tensor ", i, " (\"", t.name, "\")"));
    }
  }
  return absl::OkStatus();
}

void Mask::ApplyTo(TensorSet* values) const {
  assert(CheckMatches(*values).ok());
  for (size_t i = 0; i < tensors().size(); ++i) {
    if (!tensors()[i].prunable) continue;
    std::vector<float>& v = values->tensors[i].values;
    assert(static_cast<int64_t>(v.size()) == tensors()[i].numel);
    for (int64_t j = 0; j < tensors()[i].numel; ++j) {
      if (!Get(i, j)) v[j] = 0.0f;
    }
  }
}

std::vector<float> Mask::AsFloat(size_t tensor) const {
  std::vector<float> out(tensors()[tensor].numel);
  for (int64_t j = 0; j < tensors()[tensor].numel; ++j) out[j] = Get(tensor, j) ? 1.0f : 0.0f;
  return out;
}

const std::vector<Mask::TensorBits>& Mask::tensors() const {
  static const std::vector<TensorBits> kEmpty;
  return bits_ ? *bits_ : kEmpty;
}

std::vector<Mask::TensorBits>& Mask::mutable_tensors() {
  if (!bits_) {
    bits_ = std::make_shared<std::vector<TensorBits>>();
  } else if (bits_.use_count() > 1) {
    bits_ = std::make_shared<std::vector<TensorBits>>(*bits_);
  }
  return *bits_;
}

bool Mask::IsSubsetOf(const Mask& other) const {
  if (tensors().size() != other.tensors().size()) return false;
  for (size_t t = 0; t < tensors().size(); ++t) {
    const TensorBits& a = tensors()[t];
    const TensorBits& b = other.tensors()[t];
    if (a.prunable != b.prunable || a.numel != b.numel || a.words.size() != b.words.size()) return false;
    for (size_t w = 0; w < a.words.size(); ++w) {
      if ((a.words[w] & ~b.words[w]) != 0) return false;
    }
  }
  return true;
}

bool Mask::operator==(const Mask& other) const { return bits_ == other.bits_ || tensors() == other.tensors(); }

std::string Mask::Serialize() const {
  ByteWriter w;
  w.U64(tensors().size());
  for (const TensorBits& t : tensors()) {
    w.U8(t.prunable ? 1 : 0);
    w.I64(t.numel);
    for (uint64_t word : t.words) w.U64(word);
  }
  return SealEnvelope(kMaskMagic, kMaskVersion, w.Take());
}

absl::StatusOr<Mask> Mask::Deserialize(std::string_view bytes) {
  absl::StatusOr<std::string_view> body = OpenEnvelope(bytes, kMaskMagic, kMaskVersion, "Mask");
  if (!body.ok()) return body.status();
  ByteReader r(*body);
  uint64_t count;
  if (!r.U64(&count)) return Corrupt("truncated tensor count");
  Mask mask;
  for (uint64_t i = 0; i < count; ++i) {
    TensorBits t;
    uint8_t prunable;
    if (!r.U8(&prunable) || prunable > 1 || !r.I64(&t.numel) || t.numel < 0) {
      return Corrupt(absl::StrCat("bad header for tensor ", i));
    }
    t.prunable = prunable == 1;
    if (t.prunable && t.numel / 64 > static_cast<int64_t>(r.remaining() / 8)) {
      return Corrupt(absl::StrCat("truncated bits of tensor ", i));
    }
    size_t n_words = t.prunable ? MaskWordCount(t.numel) : 0;
    if (n_words > r.remaining() / 8) return Corrupt(absl::StrCat("truncated bits of tensor ", i));
    t.words.resize(n_words);
    for (uint64_t& word : t.words) r.U64(&word);
    if (n_words > 0 && (t.words.back() & ~LastWordMask(t.numel)) != 0) {
      return Corrupt(absl::StrCat("tensor ", i, " has bits set past its ", t.numel, " elements"));
    }
    mask.mutable_tensors().push_back(std::move(t));
  }
  if (r.remaining() != 0) return Corrupt(absl::StrCat(r.remaining(), " trailing bytes"));
  return mask;
}

}  // namespace lfl

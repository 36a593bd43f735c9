#include "wire/model_payload.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace lfl {

int UniformBits(QuantMode mode) {
  switch (mode) {
    case QuantMode::kNone:
      return 32;
    case QuantMode::kUniform8:
      return 8;
    case QuantMode::kUniform4:
      return 4;
    case QuantMode::kUniform2:
      return 2;
    case QuantMode::kBsq:
      return -1;
  }
  return 32;
}

namespace {

// Record for a prunable tensor whose exact levels are known (BSQ).
codec::TensorRecord ExactRecord(uint32_t id, const NamedTensor& t, const ExactLevels& exact,
                                const codec::BitWords* mask) {
  codec::TensorRecord r;
  r.id = id;
  r.shape = t.shape;
  r.bits = static_cast<uint8_t>(exact.bits);
  r.scale = exact.scale;
  const int64_t n = t.numel();
  r.levels.reserve(mask ? static_cast<size_t>(codec::CountKept(*mask, n)) : static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (mask == nullptr || ((*mask)[i / 64] >> (i % 64)) & 1) r.levels.push_back(exact.levels[i]);
  }
  if (mask) {
    r.mask_kind = codec::MaskKind::kExplicit;
    r.mask = *mask;
  }
  return r;
}

}  // namespace

absl::StatusOr<std::string> EncodeModel(const TensorSet& values, const EncodeSpec& spec,
                                        std::vector<int>* layer_bits) {
  if (spec.mask) {
    if (absl::Status s = spec.mask->CheckMatches(values); !s.ok()) return s;
  }
  if (spec.exact && spec.exact->size() != values.size()) {
    return absl::InvalidArgumentError("exact levels do not match the tensor count");
  }
  codec::Payload payload;
  payload.round = spec.round;
  payload.client_id = spec.client_id;
  if (layer_bits) layer_bits->clear();
  for (size_t i = 0; i < values.size(); ++i) {
    const NamedTensor& t = values.tensors[i];
    const uint32_t id = static_cast<uint32_t>(i);
    const codec::BitWords* mask = (spec.mask && t.prunable) ? &spec.mask->words(i) : nullptr;
    // A fully kept tensor needs no mask on the wire.
    if (mask && codec::CountKept(*mask, t.numel()) == t.numel()) mask = nullptr;
    const std::optional<ExactLevels>* exact =
        (spec.exact && t.prunable && (*spec.exact)[i]) ? &(*spec.exact)[i] : nullptr;
    if (exact && static_cast<int64_t>((*exact)->levels.size()) != t.numel()) {
      return absl::InvalidArgumentError(absl::StrCat("exact levels of ", t.name, " have the wrong size"));
    }
    const int bits = t.prunable ? spec.weight_bits : spec.other_bits;
    codec::TensorRecord r = exact ? ExactRecord(id, t, **exact, mask)
                                  : codec::QuantizeUniform(id, t.shape, t.values.data(), mask, bits);
    if (mask) {
      r.mask_kind = spec.send_mask ? codec::MaskKind::kExplicit : codec::MaskKind::kReference;
      r.mask_version = spec.mask_version;
      r.mask = spec.send_mask ? *mask : codec::BitWords{};
    } else {
      r.mask_kind = codec::MaskKind::kAll;
      r.mask.clear();
    }
    if (layer_bits && t.prunable) layer_bits->push_back(r.bits);
    payload.tensors.push_back(std::move(r));
  }
  return codec::Encode(payload);
}

absl::StatusOr<DecodedModel> DecodeModel(std::string_view bytes, const TensorSet& layout,
                                         const Mask* held_mask, uint32_t held_version) {
  std::vector<HeldMask> held;
  if (held_mask != nullptr) held.push_back({held_version, held_mask});
  return DecodeModel(bytes, layout, held);
}

codec::DecodeLimits LayoutDecodeLimits(const TensorSet& layout) {
  codec::DecodeLimits limits;
  uint64_t largest = 1, total = 0;
  uint32_t rank = 0;
  for (const NamedTensor& t : layout.tensors) {
    largest = std::max<uint64_t>(largest, static_cast<uint64_t>(t.numel()));
    total += static_cast<uint64_t>(t.numel());
    rank = std::max<uint32_t>(rank, static_cast<uint32_t>(t.shape.size()));
  }
  limits.max_elements_per_tensor = largest;
  limits.max_total_elements = std::max<uint64_t>(total, 1);
  limits.max_tensors = static_cast<uint32_t>(std::max<size_t>(layout.size(), 1));
  limits.max_rank = std::max<uint32_t>(rank, 1);
  return limits;
}

uint64_t MaxEncodedBytes(const TensorSet& layout) {
  // Header, body header (round, client id, tensor count as varints), then per record: id,
  // rank, dims, bits, scale, mask version and kind, kept count (each at most a 10-byte varint
  // or a fixed field), a bitmap mask, raw float32 values, and a sign plane with its markers.
  uint64_t bytes = 20 + 3 * 10;
  for (const NamedTensor& t : layout.tensors) {
    const uint64_t n = static_cast<uint64_t>(t.numel());
    bytes += 16 * 10 + 10 * t.shape.size() + (n + 7) / 8 + 4 * n + (n + 7) / 8 + 16;
  }
  return bytes;
}

absl::StatusOr<DecodedModel> DecodeModel(std::string_view bytes, const TensorSet& layout,
                                         const std::vector<HeldMask>& held) {
  // Limits from the layout: a record cannot make the decoder allocate beyond what the model
  // itself needs, however few bytes ask for it.
  absl::StatusOr<codec::Payload> payload = codec::Decode(bytes, LayoutDecodeLimits(layout));
  if (!payload.ok()) return payload.status();
  if (payload->tensors.size() != layout.size()) {
    return absl::InvalidArgumentError(absl::StrCat("payload has ", payload->tensors.size(),
                                                   " tensors, the model has ", layout.size()));
  }
  DecodedModel out;
  out.round = payload->round;
  out.client_id = payload->client_id;
  out.values = layout.ZerosLike();
  out.mask = Mask::Full(layout);
  std::vector<bool> seen(layout.size(), false);
  out.tensor_bits.assign(layout.size(), 0);
  for (const codec::TensorRecord& r : payload->tensors) {
    if (r.id >= layout.size() || seen[r.id]) {
      return absl::InvalidArgumentError(absl::StrCat("payload tensor id ", r.id, " is unknown or repeated"));
    }
    seen[r.id] = true;
    const NamedTensor& expected = layout.tensors[r.id];
    if (r.shape != expected.shape) {
      return absl::InvalidArgumentError(absl::StrCat("payload tensor ", expected.name, " has the wrong shape"));
    }
    if (r.mask_kind != codec::MaskKind::kAll && !expected.prunable) {
      return absl::InvalidArgumentError(absl::StrCat(expected.name, " is never pruned but carries a mask"));
    }
    const codec::BitWords* reference = nullptr;
    if (r.mask_kind == codec::MaskKind::kReference) {
      auto it = std::find_if(held.begin(), held.end(), [&r](const HeldMask& h) {
        return h.mask != nullptr && h.version == r.mask_version;
      });
      if (it == held.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            expected.name, " references mask version ", r.mask_version, ", which the receiver does not hold"));
      }
      if (out.mask_referenced && out.referenced_version != r.mask_version) {
        return absl::InvalidArgumentError(absl::StrCat(expected.name, " references mask version ", r.mask_version,
                                                       ", other tensors version ", out.referenced_version));
      }
      // Every record references the same mask, so its layout is checked once.
      if (!out.mask_referenced) {
        if (absl::Status s = it->mask->CheckMatches(layout); !s.ok()) return s;
      }
      reference = &it->mask->words(r.id);
      out.mask_referenced = true;
      out.referenced_version = r.mask_version;
    }
    std::vector<float>& dense = out.values.tensors[r.id].values;
    if (absl::Status s = codec::ExpandToDense(r, reference, &dense); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(expected.name, ": ", s.message()));
    }
    if (r.mask_kind == codec::MaskKind::kExplicit) {
      if (absl::Status s = out.mask.SetWords(r.id, r.mask); !s.ok()) return s;
      out.mask_sent = true;
    } else if (reference) {
      if (absl::Status s = out.mask.SetWords(r.id, *reference); !s.ok()) return s;
    }
    if (expected.prunable) out.layer_bits.push_back(r.bits);
    out.tensor_bits[r.id] = r.bits;
  }
  if (absl::Status s = out.values.CheckFinite(); !s.ok()) return s;
  return out;
}

uint64_t MaskHash(const Mask& mask) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int b = 0; b < 8; ++b) {
      h ^= (v >> (8 * b)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  for (size_t t = 0; t < mask.num_tensors(); ++t) {
    mix(static_cast<uint64_t>(mask.numel(t)));
    for (uint64_t w : mask.words(t)) mix(w);
  }
  return h;
}

}  // namespace lfl

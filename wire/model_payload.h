#ifndef LOTTERYFL_WIRE_MODEL_PAYLOAD_H_
#define LOTTERYFL_WIRE_MODEL_PAYLOAD_H_

// Models and updates on the wire: a TensorSet restricted to a ticket mask,
// turned into a quant/codec payload and back. Used for the downlink
// (θg ⊙ m_k) and the uplink alike, so both directions cost what the codec
// says: H(mask) + d·(n+1) bits per weight when the mask travels, d·(n+1) when
// it is referenced by version. Torch-free.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "config/modes/run_modes.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"
#include "quant/codec/codec.h"

namespace lfl {

// Magnitude bits of the uniform modes (32 = fp32 for kNone; -1 for kBsq, whose bits are learned).
int UniformBits(QuantMode mode);

// The exact integer form of one weight tensor (from BSQ): value[i] = codec::Dequantize(levels[i], bits, scale).
struct ExactLevels {
  int bits = 0;
  float scale = 0.f;
  std::vector<int32_t> levels;  // numel entries, 0 where pruned
};

struct EncodeSpec {
  // Bits for prunable weights without exact levels (32 = raw fp32) and for all
  // other tensors (biases; 32 = raw fp32). Biases count in the bytes, so quantized
  // modes pack them too.
  int weight_bits = 32;
  int other_bits = 32;
  // Ticket mask of the prunable tensors (nullptr = dense). When `send_mask` is
  // false the payload references `mask_version`, which the receiver must hold.
  const Mask* mask = nullptr;
  bool send_mask = true;
  uint32_t mask_version = 0;
  // Per tensor (same order as the TensorSet), exact levels that override
  // weight_bits — BSQ's uplink. nullptr or nullopt entries: quantize uniformly.
  const std::vector<std::optional<ExactLevels>>* exact = nullptr;
  uint64_t round = 0;
  uint32_t client_id = 0;
};

// Encodes `values` (dense; dropped elements are ignored). `layer_bits`, when
// given, receives the magnitude bits of each prunable tensor as sent.
absl::StatusOr<std::string> EncodeModel(const TensorSet& values, const EncodeSpec& spec,
                                        std::vector<int>* layer_bits = nullptr);

struct DecodedModel {
  TensorSet values;           // dense, the layout's names/shapes; zeros where dropped
  Mask mask;                  // the ticket the payload carries (full when dense)
  bool mask_sent = false;     // the payload carried the mask explicitly
  bool mask_referenced = false;
  uint32_t referenced_version = 0;
  std::vector<int> layer_bits;  // per prunable tensor
  std::vector<int> tensor_bits;  // per tensor of the layout, in its order: 0..8, or 32 (raw fp32)
  uint64_t round = 0;
  uint32_t client_id = 0;
};

// Decode limits derived from a model layout: at most its tensor count, its largest tensor's
// numel per record, its total numel per payload and its largest rank. DecodeModel uses them.
codec::DecodeLimits LayoutDecodeLimits(const TensorSet& layout);
// An upper bound on the bytes EncodeModel can produce for `layout` (every tensor raw fp32
// with an explicit bitmap mask, plus headers): the largest update an honest sender can send.
uint64_t MaxEncodedBytes(const TensorSet& layout);

// A mask the receiver holds, which a payload may reference by version.
struct HeldMask {
  uint32_t version = 0;
  const Mask* mask = nullptr;
};

// Decodes and validates a payload against `layout` (names, order, shapes): every
// tensor must be present exactly once, values finite. A referenced mask version
// must be one of `held` (all tensors of a payload reference the same version),
// which supplies it.
absl::StatusOr<DecodedModel> DecodeModel(std::string_view bytes, const TensorSet& layout,
                                         const std::vector<HeldMask>& held);
// The same with at most one held mask (nullptr: none).
absl::StatusOr<DecodedModel> DecodeModel(std::string_view bytes, const TensorSet& layout,
                                         const Mask* held_mask, uint32_t held_version);

// A stable 64-bit fingerprint of a mask (FNV-1a over its words), sent with its
// version so a stale cache is never mistaken for the current ticket.
uint64_t MaskHash(const Mask& mask);

}  // namespace lfl

#endif  // LOTTERYFL_WIRE_MODEL_PAYLOAD_H_

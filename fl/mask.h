// Mask: which elements of a TensorSet layout are kept. It lives in fl/ because the aggregator
// needs it (the masked mean); lottery/ builds tickets on it and re-exports it as
// "lottery/mask.h". Dependency arrow: lottery -> fl, never back.
#ifndef LFL_FL_MASK_H_
#define LFL_FL_MASK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fl/tensor_set.h"

namespace lfl {

// One bit per element of every prunable tensor of a layout; non-prunable tensors are always
// fully kept and store no bits. Bits are packed: element i of a tensor is bit (i % 64) of word
// (i / 64) — the same layout as the wire codec's BitWords. Bits past numel are always 0.
//
// A Mask remembers only the tensor count, prunable flags and element counts of its layout (no
// names); CheckMatches() compares those against a TensorSet. Value type; not thread-safe for
// concurrent mutation; copies are cheap (shared until changed).
class Mask {
 public:
  Mask() = default;
  // Everything kept (density 1).
  static Mask Full(const TensorSet& layout);

  size_t num_tensors() const { return tensors().size(); }
  bool prunable(size_t tensor) const { return tensors()[tensor].prunable; }
  int64_t numel(size_t tensor) const { return tensors()[tensor].numel; }

  // Requires tensor < num_tensors() and 0 <= i < numel(tensor). Non-prunable -> true.
  bool Get(size_t tensor, int64_t i) const;
  // Requires prunable(tensor) and 0 <= i < numel(tensor) (checked by assert in debug builds).
  void Set(size_t tensor, int64_t i, bool keep);
  // Kept elements of one tensor (numel for a non-prunable one).
  int64_t Kept(size_t tensor) const;
  // Kept / total over prunable elements only; 1 when the layout has no prunable element.
  double Density() const;
  // Kept / numel of one tensor; 1 for non-prunable or empty tensors.
  double Density(size_t tensor) const;

  // Packed bits of one tensor; empty for non-prunable tensors.
  const std::vector<uint64_t>& words(size_t tensor) const { return tensors()[tensor].words; }
  // Replaces a prunable tensor's bits. InvalidArgument for a bad index, a non-prunable tensor or
  // a word count other than ceil(numel / 64). Bits past numel are cleared.
  absl::Status SetWords(size_t tensor, std::vector<uint64_t> words);

  // OK when `set` has this mask's tensor count, prunable flags and element counts (and holds
  // numel values per tensor, if it holds any); otherwise InvalidArgument naming the tensor.
  absl::Status CheckMatches(const TensorSet& set) const;
  // Zeroes the dropped elements (θ ⊙ m). Requires CheckMatches(*values).ok() and values in
  // every prunable tensor (not a layout-only set).
  void ApplyTo(TensorSet* values) const;
  // 0/1 per element of one tensor.
  std::vector<float> AsFloat(size_t tensor) const;

  // True when every element this mask keeps is kept by `other` too (same layout required;
  // false for a different layout).
  bool IsSubsetOf(const Mask& other) const;

  // An address shared by the copies of this mask that have not been changed since (null for an
  // empty mask): lets a writer store each distinct ticket once.
  const void* storage_identity() const { return bits_.get(); }

  bool operator==(const Mask& other) const;
  bool operator!=(const Mask& other) const { return !(*this == other); }

  // Checkpoint format: a checksummed, versioned envelope (fl/byte_io.h). Deserialize refuses
  // truncated or corrupt input, including set bits past numel.
  std::string Serialize() const;
  static absl::StatusOr<Mask> Deserialize(std::string_view bytes);

 private:
  struct TensorBits {
    bool prunable = false;
    int64_t numel = 0;
    std::vector<uint64_t> words;  // ceil(numel / 64) words when prunable, else empty
    bool operator==(const TensorBits& o) const {
      return prunable == o.prunable && numel == o.numel && words == o.words;
    }
  };
  // Copy-on-write: copies of a mask share its bits until one of them is changed, so a server
  // holding many clients' tickets pays for each distinct ticket once (every client starts with
  // the same full mask).
  const std::vector<TensorBits>& tensors() const;
  std::vector<TensorBits>& mutable_tensors();
  std::shared_ptr<std::vector<TensorBits>> bits_;
};

// Number of 64-bit words that hold `numel` bits.
inline size_t MaskWordCount(int64_t numel) { return static_cast<size_t>((numel + 63) / 64); }

}  // namespace lfl

#endif  // LFL_FL_MASK_H_

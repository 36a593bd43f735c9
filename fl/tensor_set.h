// TensorSet: a model's parameters as named, flat float tensors, independent of LibTorch.
// Aggregation, pruning, checkpoints and the wire codec all work on this type.
#ifndef LFL_FL_TENSOR_SET_H_
#define LFL_FL_TENSOR_SET_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lfl {

struct NamedTensor {
  std::string name;            // parameter name, e.g. "conv1.weight"
  std::vector<int64_t> shape;  // dims, each >= 0
  std::vector<float> values;   // row-major, numel() values (empty in a layout-only set)
  bool prunable = false;  // conv/linear weight: LotteryFL masks these; biases/norm params never

  // Product of shape; 1 for rank 0.
  int64_t numel() const;
};

// An ordered list of tensors. The order is part of the layout: two sets are compatible only
// when names, order, shapes and prunable flags all match. A set whose `values` are empty and
// which is only used to describe that structure is called a layout.
class TensorSet {
 public:
  std::vector<NamedTensor> tensors;

  size_t size() const { return tensors.size(); }
  // The tensor called `name`, or nullptr.
  const NamedTensor* Find(std::string_view name) const;
  // Sum of numel() over all tensors / over prunable tensors.
  int64_t TotalElements() const;
  int64_t PrunableElements() const;

  // Same names, order, shapes and prunable flags (values are not compared).
  bool SameLayout(const TensorSet& other) const;
  // OK when this set has `expected`'s layout and every tensor of *this* holds exactly numel()
  // values (`expected` may be a layout without values). Otherwise InvalidArgument naming the
  // first difference.
  absl::Status CheckLayout(const TensorSet& expected) const;
  // OK when every value is finite; otherwise InvalidArgument naming the tensor and flat index
  // of the first NaN/Inf.
  absl::Status CheckFinite() const;
  // Same layout, every value 0.
  TensorSet ZerosLike() const;
};

// Binary serialization for checkpoints (not the wire codec): a checksummed, versioned envelope
// (see fl/byte_io.h) around names, shapes, flags and raw fp32 values (a layout without values
// round-trips too). Deserialization checks every length against the buffer and refuses corrupt
// or truncated input with a status.
std::string SerializeTensorSet(const TensorSet& set);
absl::StatusOr<TensorSet> DeserializeTensorSet(std::string_view bytes);

}  // namespace lfl

#endif  // LFL_FL_TENSOR_SET_H_

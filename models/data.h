// Dataset splits as float tensors. Built once per process and shared read-only
// by every virtual client (clients hold only index lists into it).
#ifndef LFL_MODELS_DATA_H_
#define LFL_MODELS_DATA_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "partitioning/dataset.h"

namespace lfl {

// A whole split as tensors. Read-only after construction, so one instance can
// be used by any number of threads at once.
struct TensorData {
  torch::Tensor images;  // float32 [N, C, H, W], normalized per channel
  torch::Tensor labels;  // int64 [N]
};

// Per-channel mean and standard deviation of pixel values scaled to [0, 1].
struct Normalization {
  std::vector<float> mean;
  std::vector<float> stddev;
};

// Statistics of `train` (N×C×H×W bytes, CHW order), one entry per channel. A
// channel with zero variance (or an empty split) gets stddev 1 so that
// normalizing never divides by zero; an empty split gets mean 0.
Normalization ComputeNormalization(const Split& train, int64_t channels);

// `split` as tensors: pixels become (byte / 255 - mean[c]) / stddev[c].
// `shape_source` supplies channels, height and width. Preconditions:
// split.images.size() == split.size() * C * H * W and norm has C entries.
TensorData ToTensorData(const Split& split, const Dataset& shape_source, const Normalization& norm);

}  // namespace lfl

#endif  // LFL_MODELS_DATA_H_

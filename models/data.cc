#include "models/data.h"

#include <array>
#include <cmath>

namespace lfl {

// Counts byte values per channel, then takes moments of the histogram: exact
// for constant channels (variance exactly 0) and one pass over the pixels.
Normalization ComputeNormalization(const Split& train, int64_t channels) {
  Normalization norm{std::vector<float>(channels, 0.f), std::vector<float>(channels, 1.f)};
  const int64_t n = train.size();
  if (n == 0 || channels <= 0) return norm;
  const int64_t plane = static_cast<int64_t>(train.images.size()) / (n * channels);
  for (int64_t c = 0; c < channels; ++c) {
    std::array<int64_t, 256> histogram{};
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* pixels = train.images.data() + (i * channels + c) * plane;
      for (int64_t p = 0; p < plane; ++p) ++histogram[pixels[p]];
    }
    const double count = static_cast<double>(n * plane);
    double sum = 0;
    for (int v = 0; v < 256; ++v) sum += static_cast<double>(histogram[v]) * v;
    const double mean = sum / count;
    double squares = 0;
    for (int v = 0; v < 256; ++v)
      squares += static_cast<double>(histogram[v]) * (v - mean) * (v - mean);
    const double stddev = std::sqrt(squares / count) / 255.0;
    norm.mean[c] = static_cast<float>(mean / 255.0);
    norm.stddev[c] = stddev > 0 ? static_cast<float>(stddev) : 1.f;
  }
  return norm;
}

TensorData ToTensorData(const Split& split, const Dataset& shape_source,
                        const Normalization& norm) {
  const int64_t n = split.size();
  const int64_t c = shape_source.channels;
  torch::Tensor bytes =
      torch::from_blob(const_cast<uint8_t*>(split.images.data()),
                       {n, c, shape_source.height, shape_source.width}, torch::kUInt8);
  torch::Tensor mean = torch::tensor(norm.mean).view({1, c, 1, 1});
  torch::Tensor stddev = torch::tensor(norm.stddev).view({1, c, 1, 1});
  TensorData data;
  data.images = bytes.to(torch::kFloat32).div_(255.0).sub_(mean).div_(stddev);
  data.labels = torch::tensor(split.labels, torch::kInt64);
  return data;
}

}  // namespace lfl

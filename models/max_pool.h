// 2×2 max pooling (stride 2, floor) for float [N, C, H, W] tensors, with
// autograd. Same values and gradients as torch::max_pool2d(x, 2) for inputs
// without NaN (ties go to the first element in row-major order, as in
// PyTorch). It exists because LibTorch 1.13's CPU max_pool2d runs a branchy
// kernel that cost as much as a convolution on MnistCnn's activations; this
// one is branch-free (see bench/models).
#ifndef LFL_MODELS_MAX_POOL_H_
#define LFL_MODELS_MAX_POOL_H_

#include <torch/torch.h>

namespace lfl {

// Throws c10::Error unless `x` is a 4-D float tensor.
torch::Tensor MaxPool2x2(const torch::Tensor& x);

}  // namespace lfl

#endif  // LFL_MODELS_MAX_POOL_H_

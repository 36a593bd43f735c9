#include "models/max_pool.h"

#include <ATen/Parallel.h>

#include <cstdint>

namespace lfl {
namespace {

// Planes (N·C) per parallel task: the planes are small, so split coarsely.
constexpr int64_t kPlanesPerTask = 16;

// Pools one H×W plane into `out`, recording in `argmax` the flat index (within
// the plane) of each maximum. The selects compile to conditional moves.
void PoolPlane(const float* in, int64_t h, int64_t w, float* out, int32_t* argmax) {
  const int64_t oh = h / 2, ow = w / 2;
  for (int64_t i = 0; i < oh; ++i) {
    const float* row0 = in + 2 * i * w;
    const float* row1 = row0 + w;
    for (int64_t j = 0; j < ow; ++j) {
      const int32_t first = static_cast<int32_t>(2 * i * w + 2 * j);
      const float a0 = row0[2 * j], a1 = row0[2 * j + 1];
      const float b0 = row1[2 * j], b1 = row1[2 * j + 1];
      const float top = a1 > a0 ? a1 : a0;
      const int32_t top_at = a1 > a0 ? first + 1 : first;
      const float bottom = b1 > b0 ? b1 : b0;
      const int32_t bottom_at = static_cast<int32_t>(b1 > b0 ? first + w + 1 : first + w);
      out[i * ow + j] = bottom > top ? bottom : top;
      argmax[i * ow + j] = bottom > top ? bottom_at : top_at;
    }
  }
}

class MaxPool2x2Function : public torch::autograd::Function<MaxPool2x2Function> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input) {
    TORCH_CHECK(input.dim() == 4 && input.scalar_type() == torch::kFloat32,
                "MaxPool2x2 expects a float [N, C, H, W] tensor, got ", input.sizes());
    const torch::Tensor x = input.contiguous();
    const int64_t h = x.size(2), w = x.size(3);
    const int64_t plane_in = h * w, plane_out = (h / 2) * (w / 2);
    torch::Tensor out = torch::empty({x.size(0), x.size(1), h / 2, w / 2}, x.options());
    torch::Tensor argmax = torch::empty(out.sizes(), x.options().dtype(torch::kInt32));
    const float* in_data = x.data_ptr<float>();
    float* out_data = out.data_ptr<float>();
    int32_t* argmax_data = argmax.data_ptr<int32_t>();
    at::parallel_for(0, x.size(0) * x.size(1), kPlanesPerTask, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        PoolPlane(in_data + p * plane_in, h, w, out_data + p * plane_out,
                  argmax_data + p * plane_out);
      }
    });
    ctx->save_for_backward({argmax});
    ctx->saved_data["height"] = h;
    ctx->saved_data["width"] = w;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const torch::Tensor argmax = ctx->get_saved_variables()[0];
    const int64_t h = ctx->saved_data["height"].toInt();
    const int64_t w = ctx->saved_data["width"].toInt();
    const torch::Tensor grad_out = grads[0].contiguous();
    torch::Tensor grad_in =
        torch::zeros({argmax.size(0), argmax.size(1), h, w}, grad_out.options());
    const int64_t plane_out = argmax.size(2) * argmax.size(3);
    const float* grad_out_data = grad_out.data_ptr<float>();
    const int32_t* argmax_data = argmax.data_ptr<int32_t>();
    float* grad_in_data = grad_in.data_ptr<float>();
    at::parallel_for(0, argmax.size(0) * argmax.size(1), kPlanesPerTask,
                     [&](int64_t begin, int64_t end) {
                       for (int64_t p = begin; p < end; ++p) {
                         float* plane = grad_in_data + p * h * w;
                         for (int64_t k = 0; k < plane_out; ++k) {
                           plane[argmax_data[p * plane_out + k]] = grad_out_data[p * plane_out + k];
                         }
                       }
                     });
    return {grad_in};
  }
};

}  // namespace

torch::Tensor MaxPool2x2(const torch::Tensor& x) { return MaxPool2x2Function::apply(x); }

}  // namespace lfl

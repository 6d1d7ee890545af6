// CPU backend of the wm_fast engine.
#include "dream.h"

#include <ATen/Parallel.h>

namespace wm_fast {

void check_controller_args(const at::Tensor& params, const at::Tensor& x, int64_t out_size) {
  TORCH_CHECK_VALUE(out_size > 0, "out_size must be positive, got ", out_size);
  TORCH_CHECK_VALUE(params.dim() == 2, "params must be 2-D (P, n), got ", params.dim(), "-D");
  TORCH_CHECK_VALUE(x.dim() == 3, "x must be 3-D (P, B, in), got ", x.dim(), "-D");
  TORCH_CHECK_VALUE(params.scalar_type() == at::kFloat, "params must be float32, got ", params.scalar_type());
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat, "x must be float32, got ", x.scalar_type());
  TORCH_CHECK_VALUE(params.size(0) > 0, "params must hold at least one candidate (P > 0)");
  TORCH_CHECK_VALUE(x.size(0) == params.size(0), "x has ", x.size(0), " candidates but params has ",
                    params.size(0));
  const int64_t in = x.size(2);
  TORCH_CHECK_VALUE(params.size(1) == out_size * in + out_size, "params must have out*in + out = ",
                    out_size * in + out_size, " columns for in=", in, ", out=", out_size, ", got ",
                    params.size(1));
  TORCH_CHECK_VALUE(params.device() == x.device(), "params and x must be on the same device");
}

at::Tensor controller_forward_cpu(const at::Tensor& params_in, const at::Tensor& x_in, int64_t out_size) {
  check_controller_args(params_in, x_in, out_size);
  TORCH_CHECK_VALUE(params_in.device().is_cpu(), "params must be a CPU tensor for the CPU backend");
  const auto params = params_in.contiguous();
  const auto x = x_in.contiguous();
  const int64_t P = x.size(0), B = x.size(1), in = x.size(2);
  auto out = at::empty({P, B, out_size}, x.options());
  const float* pp = params.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t n = params.size(1);
  at::parallel_for(0, P * B, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t p = i / B;
      const float* w = pp + p * n;
      const float* bias = w + out_size * in;
      const float* xi = xp + i * in;
      for (int64_t o = 0; o < out_size; ++o) {
        float acc = bias[o];
        const float* wo = w + o * in;
        for (int64_t k = 0; k < in; ++k) acc += wo[k] * xi[k];
        op[i * out_size + o] = acc;
      }
    }
  });
  return out;
}

}  // namespace wm_fast

// wm_fast engine contract: one header that every backend implements.
//
// Issue #2 ships the first op (the batched linear controller); issue #3 adds the dream op
// that evaluates P candidates x R rollouts x T steps in one call (see DESIGN.md).
#pragma once

#include <torch/torch.h>

namespace wm_fast {

// Raw outputs of P linear controllers on a batch of inputs.
//   params: (P, out*in + out) float32, rows are [W (out, in) row-major, b (out)]
//   x:      (P, B, in) float32
// returns   (P, B, out) float32 = x @ W^T + b for each candidate.
at::Tensor controller_forward_cpu(const at::Tensor& params, const at::Tensor& x, int64_t out_size);

// Shared argument checks; throw c10::Error (ValueError in Python) naming the argument.
void check_controller_args(const at::Tensor& params, const at::Tensor& x, int64_t out_size);

}  // namespace wm_fast

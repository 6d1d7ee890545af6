// wm_fast engine contract: one header that every backend implements.
//
// Issue #2 shipped the first op (the batched linear controller); issue #3 adds the dream op
// that evaluates P candidates x R rollouts x T steps in one call (see DESIGN.md):
//
//   wm_fast::dream(w_ih, w_hh, b_ih, b_hh, head_w, head_b, params, init_mu, init_logvar,
//                  steps, rollouts, temperature, seed, action_mapping, controller_input,
//                  reward_source, done_threshold, layout, common_random_numbers,
//                  init_index?, init_eps?, noise_u?, noise_eps?, return_trajectories,
//                  dropout = 0, mask_z? = None, mask_h? = None)
//     -> (returns (P, R) f32, lengths (P, R) i64,
//         z (T, P, R, Z), h (T, P, R, H), action (T, P, R, A), reward (T, P, R),
//         done (T, P, R) bool, alive (T, P, R) bool)      trajectories: shape (0,) unless asked
//
// Weights follow the layout contract of python/wm_fast/mdnrnn.py (gate rows i, f, g, o; input
// columns z then a; head rows logits, mu, logsigma, reward, done), the controller parameters
// that of controller.py. Sizes Z, A, H, K, D come from the tensor shapes. The semantics are
// those of dream.py:dream_reference; the noise layout is in philox.h.
//
// Dropout dreams (Dropout's Dream Land): with dropout p > 0, or with injected masks mask_z (P, R, Z)
// and mask_h (P, R, H), each rollout has one pair of multiplier masks for all its steps: the gates
// read [z * mask_z, a] and h * mask_h (c, the action, and the z and h that C and the head read are
// never masked). Without injected masks they come from Philox (purpose kMask, philox.h), keyed by
// (seed, candidate, rollout) like the rest of the noise: 0 or 1 / (1 - p).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <string>
#include <tuple>

#include "dream_kernel.h"

namespace wm_fast {

// Raw outputs of P linear controllers on a batch of inputs.
//   params: (P, out*in + out) float32, rows are [W (out, in) row-major, b (out)]
//   x:      (P, B, in) float32
// returns   (P, B, out) float32 = x @ W^T + b for each candidate.
at::Tensor controller_forward_cpu(const at::Tensor& params, const at::Tensor& x, int64_t out_size);

// Shared argument checks; throw c10::Error (ValueError in Python) naming the argument.
void check_controller_args(const at::Tensor& params, const at::Tensor& x, int64_t out_size);

using DreamOutputs =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// The op's arguments, in schema order (see above).
#define WM_DREAM_ARGS                                                                                        \
  const at::Tensor &w_ih, const at::Tensor &w_hh, const at::Tensor &b_ih, const at::Tensor &b_hh,             \
      const at::Tensor &head_w, const at::Tensor &head_b, const at::Tensor &params, const at::Tensor &init_mu, \
      const at::Tensor &init_logvar, int64_t steps, int64_t rollouts, double temperature, int64_t seed,       \
      c10::string_view action_mapping, c10::string_view controller_input, c10::string_view reward_source,    \
      double done_threshold, c10::string_view layout, bool common_random_numbers,                             \
      const std::optional<at::Tensor>&init_index, const std::optional<at::Tensor>&init_eps,                   \
      const std::optional<at::Tensor>&noise_u, const std::optional<at::Tensor>&noise_eps,                     \
      bool return_trajectories, double dropout, const std::optional<at::Tensor>&mask_z,                       \
      const std::optional<at::Tensor>&mask_h
#define WM_DREAM_ARG_NAMES                                                                                   \
  w_ih, w_hh, b_ih, b_hh, head_w, head_b, params, init_mu, init_logvar, steps, rollouts, temperature, seed,   \
      action_mapping, controller_input, reward_source, done_threshold, layout, common_random_numbers,         \
      init_index, init_eps, noise_u, noise_eps, return_trajectories, dropout, mask_z, mask_h

// Sizes and options of one dream call, after validation.
struct DreamSpec {
  int64_t Z, A, H, K, D, L;  // L: mixture logit rows (K shared, K*Z per_dim)
  int64_t P, R, T, N, n_in, n_out;
  int32_t mapping, cinput, layout;  // enums of dream_kernel.h
  bool reward_alive, crn, injected, trajectories;
  bool masks_injected;  // mask_z and mask_h given
  uint64_t seed;
  float temperature, done_logit;
  float dropout, dropout_scale;  // p and 1 / (1 - p)
};

// The scalars both kernels take, from a validated spec.
inline DreamScalars dream_scalars(const DreamSpec& s) {
  DreamScalars d;
  d.Z = static_cast<int32_t>(s.Z);
  d.A = static_cast<int32_t>(s.A);
  d.H = static_cast<int32_t>(s.H);
  d.K = static_cast<int32_t>(s.K);
  d.L = static_cast<int32_t>(s.L);
  d.n_in = static_cast<int32_t>(s.n_in);
  d.n_out = static_cast<int32_t>(s.n_out);
  d.mapping = s.mapping;
  d.cinput = s.cinput;
  d.layout = s.layout;
  d.reward_alive = s.reward_alive;
  d.crn = s.crn;
  d.P = s.P;
  d.R = s.R;
  d.T = s.T;
  d.B = s.P * s.R;
  d.N = s.N;
  d.seed = s.seed;
  d.inv_tau = 1.0f / s.temperature;
  d.sqrt_tau = std::sqrt(s.temperature);
  d.done_logit = s.done_logit;
  d.dropout = s.dropout;
  d.dropout_scale = s.dropout_scale;
  return d;
}

// The output pointers both kernels write through (trajectories null unless requested).
inline DreamOutputPtrs dream_output_ptrs(const DreamSpec& s, DreamOutputs& out) {
  DreamOutputPtrs p;
  p.returns = std::get<0>(out).data_ptr<float>();
  p.lengths = std::get<1>(out).data_ptr<int64_t>();
  if (s.trajectories) {
    p.tr_z = std::get<2>(out).data_ptr<float>();
    p.tr_h = std::get<3>(out).data_ptr<float>();
    p.tr_a = std::get<4>(out).data_ptr<float>();
    p.tr_r = std::get<5>(out).data_ptr<float>();
    p.tr_done = std::get<6>(out).data_ptr<bool>();
    p.tr_alive = std::get<7>(out).data_ptr<bool>();
  }
  return p;
}

// Validates every argument (shape, dtype, device, finiteness, option values) and throws
// c10::ValueError (Python ValueError) naming the offending argument. `device` is the device
// the backend runs on: every tensor must be there.
DreamSpec check_dream_args(WM_DREAM_ARGS, const c10::Device& device);

// Output tensors (empty trajectories unless spec.trajectories), on `options`' device.
DreamOutputs allocate_dream_outputs(const DreamSpec& spec, const at::TensorOptions& options);

DreamOutputs dream_cpu(WM_DREAM_ARGS);
#if defined(WM_WITH_CUDA)
DreamOutputs dream_cuda(WM_DREAM_ARGS);
#endif
#if defined(WM_WITH_CUDA_EMULATOR)
// The CUDA kernel run on CPU threads (cuda_emulator.cpp); tile = rows per block (0: auto).
DreamOutputs dream_cuda_emulated(WM_DREAM_ARGS, int64_t tile);
#endif

// The engine's own noise (philox.h) as explicit tensors with DreamNoise's meaning:
// init_index (P, R) int64, init_eps (P, R, Z), u (T, P, R, Z), eps (T, P, R, Z). Feeding them to
// the reference reproduces a generator-driven engine run (up to float rounding).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> philox_dream_noise(int64_t seed, int64_t P, int64_t R,
                                                                            int64_t T, int64_t Z, int64_t N,
                                                                            bool common_random_numbers);
// The engine's own dropout masks (philox.h, purpose kMask) as explicit tensors with DreamNoise's
// meaning: mask_z (P, R, Z), mask_h (P, R, H), each value 0 or 1 / (1 - dropout).
std::tuple<at::Tensor, at::Tensor> philox_dream_masks(int64_t seed, int64_t P, int64_t R, int64_t Z, int64_t H,
                                                      double dropout, bool common_random_numbers);
// One Philox4x32-10 block (for known-answer tests).
std::vector<int64_t> philox4x32_10_words(const std::vector<int64_t>& ctr, const std::vector<int64_t>& key);

// Instruction-set variants of the CPU kernel compiled into this build, the one in use, and a
// switch for tests and benchmarks ("generic", "avx2", "avx512"; ValueError if unsupported here).
std::vector<std::string> cpu_isas();
std::string cpu_isa();
void set_cpu_isa(const std::string& name);

}  // namespace wm_fast

// CUDA backend of the dream op: one persistent kernel per call on the current stream
// (the kernel and its packing: dream_cuda_kernel.cuh).
//
// Checked on an NVIDIA H100 at 6d6d5ab (scripts/gpu_check.sh, torch 2.11.0+cu130): the engine
// tests pass there, CUDA parity included; throughput in results/engine_h100.md. The same kernel
// source also runs on CPU threads in the emulator build (cuda_emulator.cpp) for checks without a
// GPU.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>

#include <cstdlib>

#include "dream_cuda_kernel.cuh"

namespace wm_fast {
namespace {

using cuda_kernel::CudaArgs;
using cuda_kernel::kThreads;

template <int TB>
void launch(const CudaArgs& a, cudaStream_t stream, size_t smem) {
  if (smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(cuda_kernel::dream_kernel<TB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  const int64_t blocks = (a.B + TB - 1) / TB;
  cuda_kernel::dream_kernel<TB><<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(a);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

DreamOutputs dream_cuda(WM_DREAM_ARGS) {
  TORCH_CHECK_VALUE(params.defined() && params.is_cuda(), "params must be a CUDA tensor for the CUDA backend, got ",
                    params.device());
  const c10::cuda::CUDAGuard guard(params.device());
  const DreamSpec s = check_dream_args(WM_DREAM_ARG_NAMES, params.device());
  auto out = allocate_dream_outputs(s, params.options());
  std::vector<at::Tensor> keep;
  const CudaArgs a = cuda_kernel::pack_cuda_args(s, w_ih, w_hh, b_ih, b_hh, head_w, head_b, params, init_mu,
                                                 init_logvar, init_index, init_eps, noise_u, noise_eps, mask_z, mask_h, out,
                                                 keep);
  const auto* prop = at::cuda::getCurrentDeviceProperties();
  const size_t smem_max = prop->sharedMemPerBlockOptin;
  int tb = cuda_kernel::choose_tile(a, smem_max);
  // WM_FAST_CUDA_TILE=1|2|4|8|16 forces the rows per block (a tuning aid for benchmarks).
  if (const char* env = std::getenv("WM_FAST_CUDA_TILE")) {
    const int forced = std::atoi(env);
    TORCH_CHECK_VALUE(forced == 1 || forced == 2 || forced == 4 || forced == 8 || forced == 16,
                      "WM_FAST_CUDA_TILE must be 1, 2, 4, 8 or 16, got '", env, "'");
    if (cuda_kernel::smem_bytes(a, forced) <= smem_max) tb = forced;
  }
  TORCH_CHECK_VALUE(tb > 0, "sizes too large for the CUDA backend: one rollout needs ",
                    cuda_kernel::smem_bytes(a, 1), " bytes of shared memory, the device allows ", smem_max);
  const size_t smem = cuda_kernel::smem_bytes(a, tb);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  switch (tb) {
    case 1: launch<1>(a, stream, smem); break;
    case 2: launch<2>(a, stream, smem); break;
    case 4: launch<4>(a, stream, smem); break;
    case 8: launch<8>(a, stream, smem); break;
    default: launch<16>(a, stream, smem); break;
  }
  return out;
}

}  // namespace wm_fast

// Runs the CUDA dream kernel (dream_cuda_kernel.cuh) on CPU threads, to check its logic on
// machines without a GPU. Built only with -DWM_FAST_CUDA_EMULATOR=ON; exposed as
// wm_fast._C._dream_cuda_emulated(..., tile=TB) with the dream op's arguments (CPU tensors).
//
// One std::thread per CUDA thread of a block, blocks one after another: __syncthreads is a
// std::barrier over the block, __shfl_xor_sync a per-warp exchange buffer between two warp
// barriers, shared memory a per-block buffer. Slow (thousands of thread switches per step):
// for small dreams only.
#include <atomic>
#include <barrier>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "dream.h"

namespace wm_emu {

struct Dim3 {
  unsigned x;
};

struct Block {
  explicit Block(int threads, size_t smem_bytes)
      : bar(threads), smem((smem_bytes + 3) / 4 + 16, 0.0f), warp_buf(threads) {
    for (int w = 0; w < threads / 32; ++w) warp_bar.emplace_back(std::make_unique<std::barrier<>>(32));
  }
  std::barrier<> bar;
  std::vector<std::unique_ptr<std::barrier<>>> warp_bar;
  std::vector<float> smem;
  std::vector<float> warp_buf;
  std::atomic<int> or_flag{0};
};

thread_local Dim3 tl_thread{0}, tl_block{0};
thread_local Block* tl_blk = nullptr;

inline void sync() { tl_blk->bar.arrive_and_wait(); }

inline int sync_or(int pred) {
  tl_blk->bar.arrive_and_wait();
  if (pred) tl_blk->or_flag.fetch_or(1);
  tl_blk->bar.arrive_and_wait();
  const int v = tl_blk->or_flag.load();
  tl_blk->bar.arrive_and_wait();
  if (tl_thread.x == 0) tl_blk->or_flag.store(0);
  return v;
}

inline float shfl_xor(unsigned /*mask*/, float v, int o) {
  const unsigned t = tl_thread.x, w = t / 32;
  tl_blk->warp_buf[t] = v;
  tl_blk->warp_bar[w]->arrive_and_wait();
  const float r = tl_blk->warp_buf[(t & ~31u) | ((t & 31u) ^ static_cast<unsigned>(o))];
  tl_blk->warp_bar[w]->arrive_and_wait();
  return r;
}

}  // namespace wm_emu

#define threadIdx wm_emu::tl_thread
#define blockIdx wm_emu::tl_block
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __syncthreads() wm_emu::sync()
#define __syncthreads_or(p) wm_emu::sync_or(p)
#define __shfl_xor_sync(m, v, o) wm_emu::shfl_xor(m, v, o)
#define __ldg(p) (*(p))
#define WM_DYNAMIC_SMEM(name) float* name = wm_emu::tl_blk->smem.data()
#define WM_HD_FN inline

#include "dream_cuda_kernel.cuh"

namespace wm_fast {

DreamOutputs dream_cuda_emulated(WM_DREAM_ARGS, int64_t tile) {
  const DreamSpec s = check_dream_args(WM_DREAM_ARG_NAMES, c10::Device(c10::kCPU));
  auto out = allocate_dream_outputs(s, params.options());
  std::vector<at::Tensor> keep;
  const cuda_kernel::CudaArgs a = cuda_kernel::pack_cuda_args(
      s, w_ih, w_hh, b_ih, b_hh, head_w, head_b, params, init_mu, init_logvar, init_index, init_eps, noise_u,
      noise_eps, mask_z, mask_h, out, keep);
  const int tb = tile > 0 ? static_cast<int>(tile) : cuda_kernel::choose_tile(a, 227 * 1024);
  TORCH_CHECK_VALUE(tb == 1 || tb == 2 || tb == 4 || tb == 8 || tb == 16, "tile must be 1, 2, 4, 8 or 16, got ",
                    tb);
  const size_t smem = cuda_kernel::smem_bytes(a, tb);
  const int64_t blocks = (a.B + tb - 1) / tb;
  constexpr int kT = cuda_kernel::kThreads;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    wm_emu::Block block(kT, smem);
    std::vector<std::thread> threads;
    threads.reserve(kT);
    for (int t = 0; t < kT; ++t) {
      threads.emplace_back([&, t] {
        wm_emu::tl_thread.x = static_cast<unsigned>(t);
        wm_emu::tl_block.x = static_cast<unsigned>(blk);
        wm_emu::tl_blk = &block;
        switch (tb) {
          case 1: cuda_kernel::dream_kernel<1>(a); break;
          case 2: cuda_kernel::dream_kernel<2>(a); break;
          case 4: cuda_kernel::dream_kernel<4>(a); break;
          case 8: cuda_kernel::dream_kernel<8>(a); break;
          default: cuda_kernel::dream_kernel<16>(a); break;
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  return out;
}

}  // namespace wm_fast

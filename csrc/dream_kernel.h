// Internal interface between the CPU dream driver (dream_cpu.cpp: checks, weight packing,
// threads) and the CPU kernel (dream_kernel.cpp), which is compiled once per instruction set
// (generic, avx2, avx512) and picked at run time. Plain C++: no torch types cross it.
#pragma once

#include <sched.h>

#include <cstddef>
#include <cstdint>

namespace wm_fast {

// Columns per packed GEMM panel (one 16-float vector).
constexpr int kPanel = 16;

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

enum Mapping : int32_t { kCarRacing = 0, kThreshold = 1, kArgmax = 2 };
enum ControllerInput : int32_t { kZH = 0, kZCH = 1 };
enum MixtureLayout : int32_t { kShared = 0, kPerDim = 1 };

// The sizes and options of one dream call, shared by the CPU kernel's and the CUDA kernel's
// arguments (filled from the validated DreamSpec by dream_scalars, dream.h).
struct DreamScalars {
  // Sizes (all derived from tensor shapes).
  int32_t Z = 0, A = 0, H = 0, K = 0;
  int32_t L = 0;                // mixture logits: K (shared) or K * Z (per_dim)
  int32_t n_in = 0, n_out = 0;  // controller input / raw output widths
  int32_t mapping = kCarRacing, cinput = kZH, layout = kPerDim;
  bool reward_alive = false;  // +1 per step alive instead of M's reward head
  bool crn = false;           // common random numbers: candidate 0's noise for everyone
  int64_t P = 0, R = 0, T = 0, B = 0;
  int64_t N = 0;  // start-pool size
  uint64_t seed = 0;
  float inv_tau = 1.0f, sqrt_tau = 1.0f;
  float done_logit = 0.0f;  // done iff done_logit_out > done_logit (= logit(done_threshold))
  float dropout = 0.0f, dropout_scale = 1.0f;  // dream dropout p (0: none unless masks are injected), 1 / (1 - p)
};

// Where both kernels write (the dream op's output tensors; dream_output_ptrs, dream.h).
struct DreamOutputPtrs {
  float* returns = nullptr;    // B
  int64_t* lengths = nullptr;  // B
  // Trajectories (T x B x ...), all null unless requested.
  float* tr_z = nullptr;
  float* tr_h = nullptr;
  float* tr_a = nullptr;
  float* tr_r = nullptr;
  bool* tr_done = nullptr;
  bool* tr_alive = nullptr;
};

struct KernelArgs : DreamScalars, DreamOutputPtrs {
  // Packed weights (dream_cpu.cpp: pack_weights).
  int32_t Hp = 0;  // H rounded up to kPanel
  int32_t Kg = 0;  // Z + A + H: gate GEMM depth, input order [z, a, h]
  int32_t Ng = 0;  // 4 * Hp gate columns: [i | f | g | o], each padded to Hp with zero columns
  int32_t Nh = 0;  // head GEMM columns: [logits (L) | reward | done] rounded up to kPanel
  const float* gate_w = nullptr;  // Ng / kPanel panels, each Kg x kPanel (k-major)
  const float* gate_b = nullptr;  // Ng: b_ih + b_hh
  const float* head_w = nullptr;  // Nh / kPanel panels, each H x kPanel
  const float* head_b = nullptr;  // Nh
  const float* mls_w = nullptr;   // K*Z rows j = k*Z + d of [mu row (H) | logsigma row (H)]
  const float* mls_b = nullptr;   // K*Z x 2
  const float* params = nullptr;  // P x (n_out * n_in + n_out), rows [W (n_out, n_in) | b]
  const float* z0 = nullptr;      // B x Z initial latents (b = p * R + r)

  // Injected noise (T x B x Z each), or null to use the Philox streams.
  const float* noise_u = nullptr;
  const float* noise_eps = nullptr;
  // Dropout multipliers of each rollout (injected, or drawn by dream_cpu.cpp), or null: no dropout.
  const float* mask_z = nullptr;  // B x Z
  const float* mask_h = nullptr;  // B x H
};

// A barrier for the threads of the split mode: spins briefly, then yields (the machine may be
// shared). GCC atomics on plain ints: no std:: templates in the per-ISA objects.
struct alignas(64) SpinBarrier {
  int count = 0;
  int generation = 0;
  int parties = 1;
};

static inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline void spin_barrier_wait(SpinBarrier* b) {
  const int gen = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
  if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->parties) {
    __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->generation, gen + 1, __ATOMIC_RELEASE);
    return;
  }
  for (int spins = 0; __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) == gen; ++spins) {
    if (spins < 4000)
      spin_pause();
    else
      sched_yield();
  }
}

// One instruction-set variant of the kernel.
struct CpuKernel {
  const char* name;
  // Bytes of scratch memory for a tile of up to `tile` rows.
  size_t (*workspace_bytes)(const KernelArgs& a, int64_t tile);
  // Dream rows b0 .. b0 + n - 1 for all steps; writes returns/lengths (and trajectories) of
  // exactly those rows. A row's arithmetic never depends on the other rows in the tile.
  void (*run_rows)(const KernelArgs& a, int64_t b0, int64_t n, void* workspace);
  // Split mode, for batches too small to give every thread its own rows: `parts` threads
  // dream the same rows together, each computing a slice of the gate and head columns and of
  // the latent dims, meeting at `barrier` 4 times a step. Bitwise the same results as
  // run_rows. shared: split_shared_bytes(a, n), the same block for all parts;
  // private: workspace_bytes(a, n), one per part.
  size_t (*split_shared_bytes)(const KernelArgs& a, int64_t n);
  void (*run_rows_split)(const KernelArgs& a, int64_t b0, int64_t n, void* shared, void* priv, int part, int parts,
                         SpinBarrier* barrier);
};

namespace generic {
extern const CpuKernel kernel;
}
#if defined(WM_HAVE_AVX2)
namespace avx2 {
extern const CpuKernel kernel;
}
#endif
#if defined(WM_HAVE_AVX512)
namespace avx512 {
extern const CpuKernel kernel;
}
#endif

}  // namespace wm_fast

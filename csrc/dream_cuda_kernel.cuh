// The CUDA dream kernel (device code) and its host-side argument packing, shared by
// dream_cuda.cu (nvcc) and cuda_emulator.cpp (the same kernel on CPU threads, for checking
// it without a GPU; built only with -DWM_FAST_CUDA_EMULATOR=ON).
//
// Block b owns a tile of TB rollouts (rows) for all T steps, so there is no grid-wide sync
// and no per-step launch; M's weights are read from L2 by every block. Per step:
//   noise      thread per (row, lane): Philox streams of philox.h (or the injected tensors)
//   controller warp per (row, output): dot over [z, h] / [z, c, h], butterfly reduction;
//              then a thread per row applies the action mapping
//   dropout    thread per (row, lane of z and h): the rollout's mask multiplies z and h in place
//              (injected, or Philox purpose kMask); never the action
//   LSTM       thread per hidden unit j: the four gate dot products for all TB rows
//              (k-major packed weights, coalesced over j), fused cell update
//   head       thread per output column (mixture logits, reward, done), all TB rows
//   sampling   thread per (row, dim): component from the logits; then a warp per (row, dim)
//              computes only the chosen component's mu / logsigma rows
// Every row's arithmetic is a fixed sequence whatever TB, the block, or the batch split, so a
// seed gives the same returns for any P split (with CRN) and any batch size.
#pragma once

#include <cstdint>
#include <vector>

#include "dream.h"
#include "dream_kernel.h"
#include "philox.h"

#if defined(__CUDACC__)
#define WM_DYNAMIC_SMEM(name) extern __shared__ float name[]
#define WM_HD_FN __host__ __device__ inline
#endif

namespace wm_fast {
namespace cuda_kernel {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 4;  // weight rows in flight per thread in the LSTM and head loops

struct CudaArgs : DreamScalars, DreamOutputPtrs {
  const float* gate_wt;  // (Z + A + H, 4H), column g * H + j
  const float* gate_b;   // (4H)
  const float* head_wt;  // (H, L + 2): logits, reward, done
  const float* head_b;   // (L + 2)
  const float* mls_w;    // (K * Z, 2, H): mu row, logsigma row of component k, dim d at j = k * Z + d
  const float* mls_b;    // (K * Z, 2)
  const float* params;   // (P, n_out * n_in + n_out)
  const float* init_mu;  // (N, Z)
  const float* init_logvar;
  const int64_t* init_index;  // (B) or null
  const float* init_eps;      // (B, Z) or null
  const float* noise_u;       // (T, B, Z) or null
  const float* noise_eps;
  const float* mask_z;  // (B, Z) injected dropout masks, or null (then Philox masks when dropout > 0)
  const float* mask_h;  // (B, H)
};

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Shared memory of a block (floats unless noted).
struct Smem {
  float* x;     // TB x Kx: [z | a | h]
  float* hn;    // TB x H: new h
  float* cs;    // TB x H
  float* hd;    // TB x (L + 2)
  float* uu;    // TB x Z
  float* ee;    // TB x Z
  float* raw;   // TB x n_out
  float* ret;   // TB
  int* comp;    // TB x Z
  int* len;     // TB
  int* alive;   // TB
};

WM_HD_FN size_t smem_bytes(const CudaArgs& a, int tb) {
  const size_t kx = a.Z + a.A + a.H;
  const size_t floats = tb * (kx + 2 * a.H + (a.L + 2) + 2 * a.Z + a.n_out + 1);
  const size_t ints = tb * (a.Z + 2);
  return 4 * (floats + ints);
}

WM_HD_FN Smem carve(const CudaArgs& a, int tb, float* base) {
  Smem s;
  const int kx = a.Z + a.A + a.H;
  s.x = base;
  s.hn = s.x + tb * kx;
  s.cs = s.hn + tb * a.H;
  s.hd = s.cs + tb * a.H;
  s.uu = s.hd + tb * (a.L + 2);
  s.ee = s.uu + tb * a.Z;
  s.raw = s.ee + tb * a.Z;
  s.ret = s.raw + tb * a.n_out;
  s.comp = reinterpret_cast<int*>(s.ret + tb);
  s.len = s.comp + tb * a.Z;
  s.alive = s.len + tb;
  return s;
}

template <int TB>
__global__ void __launch_bounds__(kThreads) dream_kernel(const CudaArgs a) {
  WM_DYNAMIC_SMEM(smem_raw);
  const Smem s = carve(a, TB, smem_raw);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int Z = a.Z, A = a.A, H = a.H, K = a.K, L = a.L, Kx = Z + A + H, Lh = L + 2;
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * TB;
  const int nrows = static_cast<int>(a.B - b0 < TB ? a.B - b0 : TB);
  const bool traj = a.tr_z != nullptr;
  const int n_params_row = a.n_out * a.n_in + a.n_out;

  // ---- init: zero state, z_0 from the start pool
  for (int i = tid; i < TB * Kx; i += kThreads) s.x[i] = 0.0f;
  for (int i = tid; i < TB * H; i += kThreads) s.cs[i] = 0.0f;
  for (int r = tid; r < TB; r += kThreads) {
    s.ret[r] = 0.0f;
    s.len[r] = 0;
    s.alive[r] = r < nrows ? 1 : 0;
  }
  __syncthreads();
  for (int q = tid; q < nrows * Z; q += kThreads) {
    const int r = q / Z, d = q % Z;
    const int64_t b = b0 + r;
    const uint32_t rr = static_cast<uint32_t>(b % a.R);
    const uint32_t pk = a.crn ? 0u : static_cast<uint32_t>(b / a.R);
    const int64_t idx = a.init_index ? a.init_index[b]
                                     : static_cast<int64_t>(init_noise_index(a.seed, rr, pk, static_cast<uint32_t>(a.N)));
    const float e = a.init_eps ? a.init_eps[b * Z + d] : init_noise_eps(a.seed, rr, pk, static_cast<uint32_t>(d));
    s.x[r * Kx + d] = a.init_mu[idx * Z + d] + expf(0.5f * a.init_logvar[idx * Z + d]) * e;
  }
  __syncthreads();

  for (int64_t t = 0; t < a.T; ++t) {
    const uint32_t step = static_cast<uint32_t>(t);
    // ---- 1. noise of step t
    for (int q = tid; q < nrows * Z; q += kThreads) {
      const int r = q / Z, d = q % Z;
      const int64_t b = b0 + r;
      if (a.noise_u) {
        s.uu[r * Z + d] = a.noise_u[(t * a.B + b) * Z + d];
        s.ee[r * Z + d] = a.noise_eps[(t * a.B + b) * Z + d];
      } else {
        const uint32_t rr = static_cast<uint32_t>(b % a.R);
        const uint32_t pk = a.crn ? 0u : static_cast<uint32_t>(b / a.R);
        const uint32_t blk = static_cast<uint32_t>(d / 4);
        const Philox4 wu = dream_philox(a.seed, kU, blk, step, rr, pk);
        const Philox4 we = dream_philox(a.seed, kEps, blk, step, rr, pk);
        s.uu[r * Z + d] = uniform01(wu.v[d & 3]);
        float n1, n2;
        if ((d & 3) < 2)
          box_muller(we.v[0], we.v[1], n1, n2);
        else
          box_muller(we.v[2], we.v[3], n1, n2);
        s.ee[r * Z + d] = (d & 1) ? n2 : n1;
      }
    }
    // ---- 2. controller: warp per (row, output)
    for (int q = warp; q < nrows * a.n_out; q += kWarps) {
      const int r = q / a.n_out, o = q % a.n_out;
      const int64_t p = (b0 + r) / a.R;
      const float* w = a.params + p * n_params_row + static_cast<int64_t>(o) * a.n_in;
      const float* xr = s.x + r * Kx;
      float acc = 0.0f;
      for (int k = lane; k < a.n_in; k += 32) {
        float v;
        if (k < Z)
          v = xr[k];
        else if (a.cinput == kZCH)
          v = k < Z + H ? s.cs[r * H + (k - Z)] : xr[Z + A + (k - Z - H)];
        else
          v = xr[Z + A + (k - Z)];
        acc = fmaf(v, w[k], acc);
      }
      acc = warp_sum(acc);
      if (lane == 0) s.raw[r * a.n_out + o] = acc + a.params[p * n_params_row + a.n_out * a.n_in + o];
    }
    __syncthreads();
    for (int r = tid; r < nrows; r += kThreads) {
      const float* raw = s.raw + r * a.n_out;
      float* act = s.x + r * Kx + Z;
      if (a.mapping == kCarRacing) {
        for (int j = 0; j < A; ++j) act[j] = j == 0 ? tanhf(raw[0]) : sigmoidf_(raw[j]);
      } else if (a.mapping == kThreshold) {
        const float v = tanhf(raw[0]);
        const float third = 1.0f / 3.0f;
        act[0] = static_cast<float>(v > third) - static_cast<float>(v < -third);
      } else {
        int best = 0;
        for (int j = 1; j < a.n_out; ++j)
          if (raw[j] > raw[best]) best = j;
        for (int j = 0; j < A; ++j) act[j] = j == best ? 1.0f : 0.0f;
      }
    }
    __syncthreads();
    if (traj) {
      for (int q = tid; q < nrows * Kx; q += kThreads) {
        const int r = q / Kx, k = q % Kx;
        const int64_t ob = t * a.B + b0 + r;
        const float v = s.x[q];
        if (k < Z)
          a.tr_z[ob * Z + k] = v;
        else if (k < Z + A)
          a.tr_a[ob * A + (k - Z)] = v;
        else
          a.tr_h[ob * H + (k - Z - A)] = v;
      }
      for (int r = tid; r < nrows; r += kThreads) a.tr_alive[t * a.B + b0 + r] = s.alive[r] != 0;
    }
    // ---- 2b. dropout: z and h times the rollout's masks, in place (C has read them; h is
    //          overwritten by the LSTM step and z by sampling before anything else reads them)
    if (a.mask_z != nullptr || a.dropout > 0.0f) {
      __syncthreads();
      for (int q = tid; q < nrows * (Z + H); q += kThreads) {
        const int r = q / (Z + H), k = q % (Z + H);
        const int64_t b = b0 + r;
        float m;
        if (a.mask_z != nullptr) {
          m = k < Z ? a.mask_z[b * Z + k] : a.mask_h[b * H + (k - Z)];
        } else {
          const uint32_t rr = static_cast<uint32_t>(b % a.R);
          const uint32_t pk = a.crn ? 0u : static_cast<uint32_t>(b / a.R);
          m = dropout_mask(a.seed, k < Z ? kMaskZ : kMaskH, static_cast<uint32_t>(k < Z ? k : k - Z), rr, pk,
                           a.dropout, a.dropout_scale);
        }
        s.x[r * Kx + (k < Z ? k : A + k)] *= m;
      }
      __syncthreads();
    }
    // ---- 3. LSTM: thread per hidden unit, all rows
    for (int j = tid; j < H; j += kThreads) {
      float acc[TB][4];
#pragma unroll
      for (int g = 0; g < 4; ++g) {
        const float bias = a.gate_b[g * H + j];
#pragma unroll
        for (int r = 0; r < TB; ++r) acc[r][g] = bias;
      }
      const float* wcol = a.gate_wt + j;
      // kUnroll rows of weights are loaded before they are used, so that their L2 latencies
      // overlap (the loop is latency-bound otherwise: one block per SM, 8 warps).
      int k = 0;
      for (; k + kUnroll <= Kx; k += kUnroll) {
        float w4[kUnroll][4];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const float* wk = wcol + static_cast<int64_t>(k + u) * 4 * H;
          w4[u][0] = __ldg(wk);
          w4[u][1] = __ldg(wk + H);
          w4[u][2] = __ldg(wk + 2 * H);
          w4[u][3] = __ldg(wk + 3 * H);
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
          for (int r = 0; r < TB; ++r) {
            const float xv = s.x[r * Kx + k + u];
            acc[r][0] = fmaf(xv, w4[u][0], acc[r][0]);
            acc[r][1] = fmaf(xv, w4[u][1], acc[r][1]);
            acc[r][2] = fmaf(xv, w4[u][2], acc[r][2]);
            acc[r][3] = fmaf(xv, w4[u][3], acc[r][3]);
          }
        }
      }
      for (; k < Kx; ++k) {
        const float* wk = wcol + static_cast<int64_t>(k) * 4 * H;
        const float wi = __ldg(wk), wf = __ldg(wk + H), wg = __ldg(wk + 2 * H), wo = __ldg(wk + 3 * H);
#pragma unroll
        for (int r = 0; r < TB; ++r) {
          const float xv = s.x[r * Kx + k];
          acc[r][0] = fmaf(xv, wi, acc[r][0]);
          acc[r][1] = fmaf(xv, wf, acc[r][1]);
          acc[r][2] = fmaf(xv, wg, acc[r][2]);
          acc[r][3] = fmaf(xv, wo, acc[r][3]);
        }
      }
#pragma unroll
      for (int r = 0; r < TB; ++r) {
        const float cn = fmaf(sigmoidf_(acc[r][1]), s.cs[r * H + j], sigmoidf_(acc[r][0]) * tanhf(acc[r][2]));
        s.cs[r * H + j] = cn;
        s.hn[r * H + j] = sigmoidf_(acc[r][3]) * tanhf(cn);
      }
    }
    __syncthreads();
    for (int q = tid; q < TB * H; q += kThreads) s.x[(q / H) * Kx + Z + A + (q % H)] = s.hn[q];
    __syncthreads();
    // ---- 4. head: logits, reward, done
    for (int col = tid; col < Lh; col += kThreads) {
      float acc[TB];
      const float bias = a.head_b[col];
#pragma unroll
      for (int r = 0; r < TB; ++r) acc[r] = bias;
      int k = 0;
      for (; k + 2 * kUnroll <= H; k += 2 * kUnroll) {
        float w[2 * kUnroll];
#pragma unroll
        for (int u = 0; u < 2 * kUnroll; ++u) w[u] = __ldg(a.head_wt + static_cast<int64_t>(k + u) * Lh + col);
#pragma unroll
        for (int u = 0; u < 2 * kUnroll; ++u)
#pragma unroll
          for (int r = 0; r < TB; ++r) acc[r] = fmaf(s.x[r * Kx + Z + A + k + u], w[u], acc[r]);
      }
      for (; k < H; ++k) {
        const float w = __ldg(a.head_wt + static_cast<int64_t>(k) * Lh + col);
#pragma unroll
        for (int r = 0; r < TB; ++r) acc[r] = fmaf(s.x[r * Kx + Z + A + k], w, acc[r]);
      }
#pragma unroll
      for (int r = 0; r < TB; ++r) s.hd[r * Lh + col] = acc[r];
    }
    __syncthreads();
    // ---- 5. reward, done, bookkeeping; 6a. mixture components
    for (int r = tid; r < nrows; r += kThreads) {
      const float reward = a.reward_alive ? 1.0f : s.hd[r * Lh + L];
      const bool done = s.hd[r * Lh + L + 1] > a.done_logit;
      if (s.alive[r]) {
        s.ret[r] += reward;
        s.len[r] += 1;
      }
      if (traj) {
        a.tr_r[t * a.B + b0 + r] = reward;
        a.tr_done[t * a.B + b0 + r] = done;
      }
      if (done) s.alive[r] = 0;
    }
    for (int q = tid; q < nrows * Z; q += kThreads) {
      const int r = q / Z, d = q % Z;
      const float* lg = s.hd + r * Lh + (a.layout == kPerDim ? d : 0);
      const int stride = a.layout == kPerDim ? Z : 1;
      const float u = a.layout == kPerDim ? s.uu[r * Z + d] : s.uu[r * Z];
      float m = lg[0] * a.inv_tau;
      for (int k = 1; k < K; ++k) m = fmaxf(m, lg[k * stride] * a.inv_tau);
      float sum = 0.0f;
      for (int k = 0; k < K; ++k) sum += expf(lg[k * stride] * a.inv_tau - m);
      const float inv = 1.0f / sum;
      float cdf = 0.0f;
      int cnt = 0;
      for (int k = 0; k < K; ++k) {
        cdf = fmaf(expf(lg[k * stride] * a.inv_tau - m), inv, cdf);
        cnt += cdf <= u ? 1 : 0;
      }
      s.comp[r * Z + d] = cnt < K - 1 ? cnt : K - 1;
    }
    __syncthreads();
    // ---- 6b. the chosen component's mu / logsigma: warp per (row, dim); z_{t+1} into x
    for (int q = warp; q < nrows * Z; q += kWarps) {
      const int r = q / Z, d = q % Z;
      const int64_t j = static_cast<int64_t>(s.comp[r * Z + d]) * Z + d;
      const float* wm = a.mls_w + j * 2 * H;
      const float* hr = s.x + r * Kx + Z + A;
      float am = 0.0f, al = 0.0f;
      for (int k = lane; k < H; k += 32) {
        const float hv = hr[k];
        am = fmaf(hv, __ldg(wm + k), am);
        al = fmaf(hv, __ldg(wm + H + k), al);
      }
      am = warp_sum(am);
      al = warp_sum(al);
      if (lane == 0) {
        const float mu = am + a.mls_b[2 * j], ls = al + a.mls_b[2 * j + 1];
        s.x[r * Kx + d] = fmaf(expf(ls) * a.sqrt_tau, s.ee[r * Z + d], mu);
      }
    }
    const int any_alive = __syncthreads_or(tid < TB ? s.alive[tid] : 0);
    if (!traj && !any_alive) break;
  }
  for (int r = tid; r < nrows; r += kThreads) {
    a.returns[b0 + r] = s.ret[r];
    a.lengths[b0 + r] = s.len[r];
  }
}

// Packs M's weights for the kernel (ATen ops on the tensors' device and current stream) and
// fills CudaArgs; `keep` holds the packed tensors alive until the kernel has run.
inline CudaArgs pack_cuda_args(const DreamSpec& s, const at::Tensor& w_ih, const at::Tensor& w_hh,
                               const at::Tensor& b_ih, const at::Tensor& b_hh, const at::Tensor& head_w,
                               const at::Tensor& head_b, const at::Tensor& params, const at::Tensor& init_mu,
                               const at::Tensor& init_logvar, const std::optional<at::Tensor>& init_index,
                               const std::optional<at::Tensor>& init_eps, const std::optional<at::Tensor>& noise_u,
                               const std::optional<at::Tensor>& noise_eps, const std::optional<at::Tensor>& mask_z,
                               const std::optional<at::Tensor>& mask_h, DreamOutputs& out,
                               std::vector<at::Tensor>& keep) {
  const int64_t Z = s.Z, H = s.H, L = s.L, KZ = s.K * s.Z;
  const auto lopt = params.options().dtype(at::kLong);
  const auto gate_wt = at::cat({w_ih, w_hh}, 1).t().contiguous();  // (Z + A + H, 4H)
  const auto gate_b = (b_ih + b_hh).contiguous();
  const auto rows = at::cat({at::arange(L, lopt), at::arange(s.D - 2, s.D, lopt)});
  const auto head_wt = head_w.index_select(0, rows).t().contiguous();  // (H, L + 2)
  const auto head_bb = head_b.index_select(0, rows).contiguous();
  const auto mls_w = at::stack({head_w.narrow(0, L, KZ), head_w.narrow(0, L + KZ, KZ)}, 1).contiguous();
  const auto mls_b = at::stack({head_b.narrow(0, L, KZ), head_b.narrow(0, L + KZ, KZ)}, 1).contiguous();
  const auto pr = params.contiguous(), mu = init_mu.contiguous(), lv = init_logvar.contiguous();
  keep = {gate_wt, gate_b, head_wt, head_bb, mls_w, mls_b, pr, mu, lv};

  CudaArgs a{};
  static_cast<DreamScalars&>(a) = dream_scalars(s);
  a.gate_wt = gate_wt.data_ptr<float>();
  a.gate_b = gate_b.data_ptr<float>();
  a.head_wt = head_wt.data_ptr<float>();
  a.head_b = head_bb.data_ptr<float>();
  a.mls_w = mls_w.data_ptr<float>();
  a.mls_b = mls_b.data_ptr<float>();
  a.params = pr.data_ptr<float>();
  a.init_mu = mu.data_ptr<float>();
  a.init_logvar = lv.data_ptr<float>();
  if (s.injected) {
    const auto idx = init_index->contiguous(), ieps = init_eps->contiguous();
    const auto nu = noise_u->contiguous(), ne = noise_eps->contiguous();
    keep.insert(keep.end(), {idx, ieps, nu, ne});
    a.init_index = idx.data_ptr<int64_t>();
    a.init_eps = ieps.data_ptr<float>();
    a.noise_u = nu.data_ptr<float>();
    a.noise_eps = ne.data_ptr<float>();
  }
  if (s.masks_injected) {
    const auto mz = mask_z->contiguous(), mh = mask_h->contiguous();
    keep.insert(keep.end(), {mz, mh});
    a.mask_z = mz.data_ptr<float>();
    a.mask_h = mh.data_ptr<float>();
  }
  static_cast<DreamOutputPtrs&>(a) = dream_output_ptrs(s, out);
  return a;
}

// Rows per block: 4, or fewer if 4 do not fit in the shared memory a block may have; 0 if even
// one row does not fit. Every block re-reads M's weights from L2 each step, so more rows per
// block read less in all, but fewer blocks keep fewer loads in flight: on an H100
// (benchmarks/cuda_tiles.py, paper sizes) 4 rows beat 1, 2, 8 and 16 at batch 1, 64 and 1024
// (at batch 1 too, although 3 of the 4 rows are idle).
inline int choose_tile(const CudaArgs& a, size_t smem_max) {
  int tb = 4;
  while (tb > 1 && smem_bytes(a, tb) > smem_max) tb /= 2;
  return smem_bytes(a, tb) <= smem_max ? tb : 0;
}

}  // namespace cuda_kernel
}  // namespace wm_fast

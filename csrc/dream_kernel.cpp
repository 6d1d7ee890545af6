// The CPU dream kernel: one tile of rollouts through all steps. Compiled once per
// instruction set with -DWM_ISA_NS=<generic|avx2|avx512> and matching -march flags
// (see CMakeLists.txt); dream_cpu.cpp picks one at run time.
//
// Per step, for the n live rows of the tile (row = one rollout, b = p * R + r):
//   1. noise u, eps for step t (Philox streams of philox.h, or the injected tensors)
//   2. controller: raw = W_p [z, h] + b_p (or [z, c, h]), action mapping -> a; with dropout, z and h
//      are then multiplied by the rollout's masks in place (the gates read them, C has read them)
//   3. gates = [z, a, h] Wg + bg, one GEMM on packed panels (register-blocked micro-kernels)
//   4. fused pointwise LSTM cell: c' = s(f) c + s(i) tanh(g), h' = s(o) tanh(c')
//   5. head GEMM on h': mixture logits, reward, done logit only
//   6. reward / done / return / length bookkeeping
//   7. sample the component from the logits, then compute only the chosen component's
//      mu and logsigma rows (dot products with h'), z' = mu + exp(logsigma) sqrt(tau) eps
//   8. drop finished rows from the tile (unless trajectories are recorded)
// Every row's arithmetic is the same instruction sequence whatever the tile size, the row's
// slot, or the micro-kernel shape, so results do not depend on threads or batch split.
#include "dream_kernel.h"
#include "philox.h"
#include "simd.h"

#ifndef WM_ISA_NS
#error "compile with -DWM_ISA_NS=<generic|avx2|avx512>"
#endif

namespace wm_fast {
namespace WM_ISA_NS {
namespace {

// ---------------------------------------------------------------------------------------
// GEMM: C (m x 16*npanels) = bias + A (m x K, row stride lda) * Bpacked (K x 16*npanels).
// Each C element is accumulated as acc = fma(A[i,k], B[k,j], acc) for k = 0..K-1 starting
// from bias[j], whatever micro-kernel shape computes it.

#if defined(__AVX512F__)
constexpr int kMR = 8;
constexpr int np_for(int m) { return m <= 2 ? 8 : m <= 4 ? 5 : m <= 6 ? 4 : 3; }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kMR = 6;
constexpr int np_for(int m) { return m <= 1 ? 5 : m <= 2 ? 3 : m <= 3 ? 2 : 1; }
#else
constexpr int kMR = 4;
constexpr int np_for(int) { return 1; }
#endif

template <int M, int NP>
inline void micro(const float* __restrict A, int64_t lda, const float* __restrict Bp, int64_t K,
                  const float* __restrict bias, float* __restrict C, int64_t ldc) {
  vf acc[M][NP];
  const int64_t ps = K * kPanel;
#pragma GCC unroll 8
  for (int j = 0; j < NP; ++j) {
    const vf b = load(bias + j * kPanel);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) acc[i][j] = b;
  }
  for (int64_t k = 0; k < K; ++k) {
    vf b[NP];
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) b[j] = load(Bp + j * ps + k * kPanel);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const vf a = set1(A[i * lda + k]);
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) acc[i][j] = fma(a, b[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) store(C + i * ldc + j * kPanel, acc[i][j]);
}

// The last r < NP panels in one pass (fewer latency-bound passes for small M).
template <int M, int R>
inline void micro_tail(int r, const float* A, int64_t lda, const float* Bp, int64_t K, const float* bias, float* C,
                       int64_t ldc) {
  if constexpr (R >= 1) {
    if (r == R)
      micro<M, R>(A, lda, Bp, K, bias, C, ldc);
    else
      micro_tail<M, R - 1>(r, A, lda, Bp, K, bias, C, ldc);
  }
}

template <int M>
void row_block(const float* A, int64_t lda, const float* Bp, int64_t K, int64_t npanels, const float* bias,
               float* C, int64_t ldc) {
  constexpr int NP = np_for(M);
  int64_t q = 0;
  for (; q + NP <= npanels; q += NP)
    micro<M, NP>(A, lda, Bp + q * K * kPanel, K, bias + q * kPanel, C + q * kPanel, ldc);
  if (q < npanels)
    micro_tail<M, NP - 1>(static_cast<int>(npanels - q), A, lda, Bp + q * K * kPanel, K, bias + q * kPanel,
                          C + q * kPanel, ldc);
}

template <int M>
inline void row_block_dispatch(int m, const float* A, int64_t lda, const float* Bp, int64_t K, int64_t npanels,
                               const float* bias, float* C, int64_t ldc) {
  if constexpr (M >= 1) {
    if (m == M)
      row_block<M>(A, lda, Bp, K, npanels, bias, C, ldc);
    else
      row_block_dispatch<M - 1>(m, A, lda, Bp, K, npanels, bias, C, ldc);
  }
}

void gemm(const float* A, int64_t lda, int64_t m, const float* Bp, int64_t K, int64_t npanels, const float* bias,
          float* C, int64_t ldc) {
  for (int64_t i0 = 0; i0 < m; i0 += kMR) {
    const int mm = static_cast<int>(m - i0 < kMR ? m - i0 : kMR);
    row_block_dispatch<kMR>(mm, A + i0 * lda, lda, Bp, K, npanels, bias, C + i0 * ldc, ldc);
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers

inline int chunk(int64_t n, int64_t i) { return static_cast<int>(n - i < kW ? n - i : kW); }

// acc += x[0:n] * w[0:n] in 16-lane chunks (fixed order).
inline vf dot_acc(vf acc, const float* __restrict x, const float* __restrict w, int64_t n) {
  int64_t i = 0;
  for (; i + kW <= n; i += kW) acc = fma(load(x + i), load(w + i), acc);
  if (i < n) acc = fma(loadn(x + i, static_cast<int>(n - i)), loadn(w + i, static_cast<int>(n - i)), acc);
  return acc;
}

// Two rows (j0, j1) of [mu | logsigma] against h: out = {mu0, ls0, mu1, ls1} without bias.
inline void dot_mls2(const float* __restrict h, const float* __restrict r0, const float* __restrict r1, int64_t H,
                     float* out) {
  vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
  int64_t i = 0;
  for (; i + kW <= H; i += kW) {
    const vf x = load(h + i);
    a0 = fma(x, load(r0 + i), a0);
    a1 = fma(x, load(r0 + H + i), a1);
    a2 = fma(x, load(r1 + i), a2);
    a3 = fma(x, load(r1 + H + i), a3);
  }
  if (i < H) {
    const int n = static_cast<int>(H - i);
    const vf x = loadn(h + i, n);
    a0 = fma(x, loadn(r0 + i, n), a0);
    a1 = fma(x, loadn(r0 + H + i, n), a1);
    a2 = fma(x, loadn(r1 + i, n), a2);
    a3 = fma(x, loadn(r1 + H + i, n), a3);
  }
  out[0] = hsum(a0);
  out[1] = hsum(a1);
  out[2] = hsum(a2);
  out[3] = hsum(a3);
}

inline float sigmoid1(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }

void philox_batch(int64_t n, uint32_t purpose, const uint32_t* __restrict c0, uint32_t c1,
                  const uint32_t* __restrict c2, const uint32_t* __restrict c3, uint64_t seed,
                  uint32_t* __restrict o0, uint32_t* __restrict o1, uint32_t* __restrict o2,
                  uint32_t* __restrict o3) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const uint32_t tag = purpose << 24;
  for (int64_t i = 0; i < n; ++i) {
    const Philox4 r = philox4x32_10(tag | c0[i], c1, c2[i], c3[i], k0, k1);
    o0[i] = r.v[0];
    o1[i] = r.v[1];
    o2[i] = r.v[2];
    o3[i] = r.v[3];
  }
}

// ---------------------------------------------------------------------------------------
// Workspace of one tile.

struct Work {
  int64_t ldx = 0;  // row stride of X = [z | a | h]
  int64_t Zp = 0, Zb = 0, nb = 0;
  float* X = nullptr;   // tb x ldx
  float* Cs = nullptr;  // tb x Hp
  float* G = nullptr;   // tb x Ng
  float* Hd = nullptr;  // tb x Nh
  float* U = nullptr;   // tb x Zp
  float* E = nullptr;   // tb x Zp
  float* MU = nullptr;  // Zp + 2
  float* LS = nullptr;  // Zp + 2
  float* ek = nullptr;  // K x 16
  float* tmp = nullptr;  // 16
  int32_t* comp = nullptr;  // Zp + 2
  uint32_t* c0 = nullptr;   // nb counters / philox words
  uint32_t* c2 = nullptr;
  uint32_t* c3 = nullptr;
  uint32_t* w[4] = {nullptr, nullptr, nullptr, nullptr};
  float* bm[4] = {nullptr, nullptr, nullptr, nullptr};
  float* raw = nullptr;  // n_out
  int64_t* row = nullptr;  // tb: global row of slot s
  int64_t* len = nullptr;  // tb
  float* ret = nullptr;    // tb
  uint8_t* alive = nullptr;  // tb
};

size_t carve(const KernelArgs& a, int64_t tb, unsigned char* base, Work* w) {
  size_t off = 0;
  auto take = [&](size_t bytes) -> unsigned char* {
    off = (off + 63) & ~static_cast<size_t>(63);
    unsigned char* p = base ? base + off : nullptr;
    off += bytes;
    return p;
  };
  Work x;
  x.ldx = round_up(a.Kg, kW);
  x.Zp = round_up(a.Z, kW);
  x.Zb = (a.Z + 3) / 4;
  x.nb = round_up(tb * x.Zb, kW);
  const size_t f = sizeof(float);
  x.X = reinterpret_cast<float*>(take(tb * x.ldx * f));
  x.Cs = reinterpret_cast<float*>(take(tb * a.Hp * f));
  x.G = reinterpret_cast<float*>(take(tb * a.Ng * f));
  x.Hd = reinterpret_cast<float*>(take(tb * a.Nh * f));
  x.U = reinterpret_cast<float*>(take(tb * x.Zp * f));
  x.E = reinterpret_cast<float*>(take(tb * x.Zp * f));
  x.MU = reinterpret_cast<float*>(take((x.Zp + 2) * f));
  x.LS = reinterpret_cast<float*>(take((x.Zp + 2) * f));
  x.ek = reinterpret_cast<float*>(take(static_cast<size_t>(a.K) * kW * f));
  x.tmp = reinterpret_cast<float*>(take(kW * f));
  x.comp = reinterpret_cast<int32_t*>(take((x.Zp + 2) * sizeof(int32_t)));
  x.c0 = reinterpret_cast<uint32_t*>(take(x.nb * 4));
  x.c2 = reinterpret_cast<uint32_t*>(take(x.nb * 4));
  x.c3 = reinterpret_cast<uint32_t*>(take(x.nb * 4));
  for (int i = 0; i < 4; ++i) x.w[i] = reinterpret_cast<uint32_t*>(take(x.nb * 4));
  for (int i = 0; i < 4; ++i) x.bm[i] = reinterpret_cast<float*>(take(x.nb * f));
  x.raw = reinterpret_cast<float*>(take((a.n_out + 1) * f));
  x.row = reinterpret_cast<int64_t*>(take(tb * sizeof(int64_t)));
  x.len = reinterpret_cast<int64_t*>(take(tb * sizeof(int64_t)));
  x.ret = reinterpret_cast<float*>(take(tb * f));
  x.alive = take(tb);
  if (w) *w = x;
  return off + 64;
}

size_t workspace_bytes(const KernelArgs& a, int64_t tile) { return carve(a, tile, nullptr, nullptr); }

// ---------------------------------------------------------------------------------------
// Step pieces

// Noise of step t for slots 0..n-1 into U, E (rows of Zp).
void make_noise(const KernelArgs& a, Work& w, int64_t n, int64_t t) {
  const int64_t Z = a.Z, Zp = w.Zp;
  if (a.noise_u) {
    for (int64_t s = 0; s < n; ++s) {
      const float* u = a.noise_u + (t * a.B + w.row[s]) * Z;
      const float* e = a.noise_eps + (t * a.B + w.row[s]) * Z;
      for (int64_t d = 0; d < Z; ++d) {
        w.U[s * Zp + d] = u[d];
        w.E[s * Zp + d] = e[d];
      }
    }
    return;
  }
  const int64_t Zb = w.Zb, m = n * Zb;
  for (int64_t s = 0; s < n; ++s) {
    const int64_t b = w.row[s];
    const uint32_t r = static_cast<uint32_t>(b % a.R);
    const uint32_t p = a.crn ? 0u : static_cast<uint32_t>(b / a.R);
    for (int64_t j = 0; j < Zb; ++j) {
      w.c0[s * Zb + j] = static_cast<uint32_t>(j);
      w.c2[s * Zb + j] = r;
      w.c3[s * Zb + j] = p;
    }
  }
  const int64_t mv = round_up(m, kW);
  const uint32_t step = static_cast<uint32_t>(t);
  // u: lane d = word d % 4 of block d / 4
  philox_batch(mv, kU, w.c0, step, w.c2, w.c3, a.seed, w.w[0], w.w[1], w.w[2], w.w[3]);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t d = 0; d < Z; ++d)
      w.U[s * Zp + d] = uniform01(w.w[d & 3][s * Zb + (d >> 2)]);
  // eps: Box-Muller on (w0, w1) and (w2, w3)
  philox_batch(mv, kEps, w.c0, step, w.c2, w.c3, a.seed, w.w[0], w.w[1], w.w[2], w.w[3]);
  const float s24 = 1.0f / 16777216.0f;
  for (int64_t i = 0; i < mv; i += kW) {
    const vf u1a = (u32_top24(w.w[0] + i) + 1.0f) * s24, u2a = u32_top24(w.w[1] + i) * s24;
    const vf u1b = (u32_top24(w.w[2] + i) + 1.0f) * s24, u2b = u32_top24(w.w[3] + i) * s24;
    const vf ra = vsqrt(vlog(u1a) * -2.0f), rb = vsqrt(vlog(u1b) * -2.0f);
    vf ca, sa, cb, sb;
    vsincos2pi(u2a, ca, sa);
    vsincos2pi(u2b, cb, sb);
    store(w.bm[0] + i, ra * ca);
    store(w.bm[1] + i, ra * sa);
    store(w.bm[2] + i, rb * cb);
    store(w.bm[3] + i, rb * sb);
  }
  for (int64_t s = 0; s < n; ++s)
    for (int64_t d = 0; d < Z; ++d)
      w.E[s * Zp + d] = w.bm[d & 3][s * Zb + (d >> 2)];
}

// Controller of slot s (row s of X): writes the action into X's a segment.
void act(const KernelArgs& a, Work& w, int64_t s, float* X) {
  const int64_t Z = a.Z, H = a.H, A = a.A, n_in = a.n_in;
  float* x = X + s * w.ldx;
  const float* h = x + Z + A;
  const float* c = w.Cs + s * a.Hp;
  const int64_t p = w.row[s] / a.R;
  const float* W = a.params + p * (a.n_out * n_in + a.n_out);
  const float* bias = W + a.n_out * n_in;
  for (int64_t o = 0; o < a.n_out; ++o) {
    const float* wo = W + o * n_in;
    vf acc = zero();
    acc = dot_acc(acc, x, wo, Z);
    if (a.cinput == kZCH) {
      acc = dot_acc(acc, c, wo + Z, H);
      acc = dot_acc(acc, h, wo + Z + H, H);
    } else {
      acc = dot_acc(acc, h, wo + Z, H);
    }
    w.raw[o] = hsum(acc) + bias[o];
  }
  float* act_out = x + Z;
  if (a.mapping == kCarRacing) {
    for (int64_t j = 0; j < A; ++j) act_out[j] = j == 0 ? __builtin_tanhf(w.raw[0]) : sigmoid1(w.raw[j]);
  } else if (a.mapping == kThreshold) {
    const float v = __builtin_tanhf(w.raw[0]);
    const float third = static_cast<float>(1.0 / 3.0);
    act_out[0] = static_cast<float>(v > third) - static_cast<float>(v < -third);
  } else {
    int64_t best = 0;
    for (int64_t j = 1; j < a.n_out; ++j)
      if (w.raw[j] > w.raw[best]) best = j;
    for (int64_t j = 0; j < A; ++j) act_out[j] = j == best ? 1.0f : 0.0f;
  }
}

// Dropout: the z and h segments of the rows of slots 0..n-1 times their rollout's masks, after the
// controller has read them and before the gate GEMM (the action segment is never masked; the cell
// then overwrites h and sampling z, so neither C nor the head ever reads a masked value).
void apply_masks(const KernelArgs& a, const Work& w, int64_t n, float* X) {
  const int64_t Z = a.Z, H = a.H, off = a.Z + a.A;
  for (int64_t s = 0; s < n; ++s) {
    float* x = X + s * w.ldx;
    const float* mz = a.mask_z + w.row[s] * Z;
    const float* mh = a.mask_h + w.row[s] * H;
    for (int64_t d = 0; d < Z; ++d) x[d] *= mz[d];
    for (int64_t j = 0; j < H; ++j) x[off + j] *= mh[j];
  }
}

// LSTM cell on the gate rows of slots 0..n-1 for hidden units [j0, j1) (multiples of 16):
// updates Cs and the h segment of the rows of xout (row stride w.ldx).
void cell(const KernelArgs& a, const Work& w, int64_t n, int64_t j0, int64_t j1, float* xout) {
  const int64_t Hp = a.Hp, H = a.H, off = a.Z + a.A;
  for (int64_t s = 0; s < n; ++s) {
    const float* g = w.G + s * a.Ng;
    float* c = w.Cs + s * Hp;
    float* h = xout + s * w.ldx + off;
    for (int64_t j = j0; j < j1; j += kW) {
      const vf gi = vsigmoid(load(g + j)), gf = vsigmoid(load(g + Hp + j));
      const vf gg = vtanh(load(g + 2 * Hp + j)), go = vsigmoid(load(g + 3 * Hp + j));
      const vf cn = fma(gf, load(c + j), gi * gg);
      store(c + j, cn);
      const vf hn = go * vtanh(cn);
      if (j + kW <= H)
        store(h + j, hn);
      else if (j < H)
        storen(h + j, hn, chunk(H, j));
    }
  }
}

// Latent dims [dlo, dhi) (dlo a multiple of 16) of slot s's next z, from its head row, U, E
// and h' (in the row xsrc) into the z segment of the row xdst.
void sample(const KernelArgs& a, const Work& w, int64_t s, int64_t dlo, int64_t dhi, const float* xsrc, float* xdst) {
  const int64_t Z = a.Z, K = a.K, H = a.H, Zp = w.Zp;
  const float* hd = w.Hd + s * a.Nh;
  const float* u = w.U + s * Zp;
  const float* e = w.E + s * Zp;
  float* x = xdst;
  const float* h = xsrc + Z + a.A;
  if (a.layout == kPerDim) {
    for (int64_t d0 = dlo; d0 < dhi; d0 += kW) {
      const int n = chunk(dhi, d0);
      vf m = loadn(hd + d0, n) * a.inv_tau;
      for (int64_t k = 1; k < K; ++k) m = vmax(m, loadn(hd + k * Z + d0, n) * a.inv_tau);
      vf sum = zero();
      for (int64_t k = 0; k < K; ++k) {
        const vf ek = vexp(loadn(hd + k * Z + d0, n) * a.inv_tau - m);
        store(w.ek + k * kW, ek);
        sum = sum + ek;
      }
      const vf inv = set1(1.0f) / sum;
      const vf uu = loadn(u + d0, n);
      vf cdf = zero(), cnt = zero();
      for (int64_t k = 0; k < K; ++k) {
        cdf = fma(load(w.ek + k * kW), inv, cdf);
        cnt = cnt + select(cdf <= uu, set1(1.0f), zero());
      }
      cnt = vmin(cnt, set1(static_cast<float>(K - 1)));
      store(w.tmp, cnt);
      for (int i = 0; i < n; ++i) w.comp[d0 + i] = static_cast<int32_t>(w.tmp[i]);
    }
  } else {
    float mx = hd[0] * a.inv_tau;
    for (int64_t k = 1; k < K; ++k) mx = hd[k] * a.inv_tau > mx ? hd[k] * a.inv_tau : mx;
    float sum = 0.0f;
    for (int64_t k = 0; k < K; ++k) sum += __builtin_expf(hd[k] * a.inv_tau - mx);
    const float inv = 1.0f / sum;
    float cdf = 0.0f;
    int32_t cnt = 0;
    for (int64_t k = 0; k < K; ++k) {
      cdf += __builtin_expf(hd[k] * a.inv_tau - mx) * inv;
      cnt += cdf <= u[0] ? 1 : 0;
    }
    const int32_t kk = cnt < K - 1 ? cnt : static_cast<int32_t>(K - 1);
    for (int64_t d = dlo; d < dhi; ++d) w.comp[d] = kk;
  }
  // Only the chosen component's mu / logsigma rows.
  float o4[4];
  int64_t d = dlo;
  for (; d + 1 < dhi; d += 2) {
    const int64_t j0 = w.comp[d] * Z + d, j1 = w.comp[d + 1] * Z + d + 1;
    dot_mls2(h, a.mls_w + j0 * 2 * H, a.mls_w + j1 * 2 * H, H, o4);
    w.MU[d] = o4[0] + a.mls_b[2 * j0];
    w.LS[d] = o4[1] + a.mls_b[2 * j0 + 1];
    w.MU[d + 1] = o4[2] + a.mls_b[2 * j1];
    w.LS[d + 1] = o4[3] + a.mls_b[2 * j1 + 1];
  }
  if (d < dhi) {
    const int64_t j0 = w.comp[d] * Z + d;
    dot_mls2(h, a.mls_w + j0 * 2 * H, a.mls_w + j0 * 2 * H, H, o4);
    w.MU[d] = o4[0] + a.mls_b[2 * j0];
    w.LS[d] = o4[1] + a.mls_b[2 * j0 + 1];
  }
  for (int64_t d0 = dlo; d0 < dhi; d0 += kW) {
    const int n = chunk(dhi, d0);
    const vf sigma = vexp(loadn(w.LS + d0, n)) * a.sqrt_tau;
    const vf z = fma(sigma, loadn(e + d0, n), loadn(w.MU + d0, n));
    storen(x + d0, z, n);
  }
}

// Step t's reward and done from the head outputs (w.Hd) of n rows: returns, lengths, alive
// flags and (when recorded) the reward / done trajectories.
void reward_and_done(const KernelArgs& a, Work& w, int64_t n, int64_t t) {
  for (int64_t s = 0; s < n; ++s) {
    const float* hd = w.Hd + s * a.Nh;
    const float reward = a.reward_alive ? 1.0f : hd[a.L];
    const bool done = hd[a.L + 1] > a.done_logit;
    if (w.alive[s]) {
      w.ret[s] += reward;
      w.len[s] += 1;
    }
    if (a.tr_z != nullptr) {  // trajectories recorded
      const int64_t ob = t * a.B + w.row[s];
      a.tr_r[ob] = reward;
      a.tr_done[ob] = done;
    }
    if (done) w.alive[s] = 0;
  }
}

void copy_floats(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

void run_rows(const KernelArgs& a, int64_t b0, int64_t n_rows, void* workspace) {
  Work w;
  carve(a, n_rows, static_cast<unsigned char*>(workspace), &w);
  const int64_t Z = a.Z, A = a.A, H = a.H, B = a.B;
  const bool traj = a.tr_z != nullptr;
  // Zero everything once (padding lanes must stay zero; counters must be defined).
  {
    const size_t bytes = carve(a, n_rows, nullptr, nullptr);
    unsigned char* p = static_cast<unsigned char*>(workspace);
    for (size_t i = 0; i < bytes; ++i) p[i] = 0;
  }
  for (int64_t s = 0; s < n_rows; ++s) {
    w.row[s] = b0 + s;
    w.alive[s] = 1;
    copy_floats(w.X + s * w.ldx, a.z0 + (b0 + s) * Z, Z);
  }
  int64_t n = n_rows;
  const int64_t npg = a.Ng / kPanel, nph = a.Nh / kPanel;
  for (int64_t t = 0; t < a.T && n > 0; ++t) {
    make_noise(a, w, n, t);
    for (int64_t s = 0; s < n; ++s) act(a, w, s, w.X);
    if (traj) {
      for (int64_t s = 0; s < n; ++s) {
        const int64_t ob = t * B + w.row[s];
        const float* x = w.X + s * w.ldx;
        copy_floats(a.tr_z + ob * Z, x, Z);
        copy_floats(a.tr_a + ob * A, x + Z, A);
        copy_floats(a.tr_h + ob * H, x + Z + A, H);
        a.tr_alive[ob] = w.alive[s] != 0;
      }
    }
    if (a.mask_z != nullptr) apply_masks(a, w, n, w.X);
    gemm(w.X, w.ldx, n, a.gate_w, a.Kg, npg, a.gate_b, w.G, a.Ng);
    cell(a, w, n, 0, a.Hp, w.X);
    gemm(w.X + Z + A, w.ldx, n, a.head_w, H, nph, a.head_b, w.Hd, a.Nh);
    reward_and_done(a, w, n, t);
    for (int64_t s = 0; s < n; ++s) sample(a, w, s, 0, Z, w.X + s * w.ldx, w.X + s * w.ldx);
    if (!traj) {  // drop finished rows: move the last live slot into the hole
      for (int64_t s = 0; s < n;) {
        if (w.alive[s]) {
          ++s;
          continue;
        }
        a.returns[w.row[s]] = w.ret[s];
        a.lengths[w.row[s]] = w.len[s];
        const int64_t last = n - 1;
        if (s != last) {
          copy_floats(w.X + s * w.ldx, w.X + last * w.ldx, w.ldx);
          copy_floats(w.Cs + s * a.Hp, w.Cs + last * a.Hp, a.Hp);
          w.row[s] = w.row[last];
          w.ret[s] = w.ret[last];
          w.len[s] = w.len[last];
          w.alive[s] = w.alive[last];
        }
        --n;
      }
    }
  }
  for (int64_t s = 0; s < n; ++s) {
    a.returns[w.row[s]] = w.ret[s];
    a.lengths[w.row[s]] = w.len[s];
  }
}

// ---------------------------------------------------------------------------------------
// Split mode: all parts dream the same n rows; X is double-buffered (step t reads X[t % 2]
// and writes z_{t+1}, h_{t+1} into X[(t + 1) % 2]). Per step:
//   A  part 0: noise, controller, trajectory record, dropout masks           | barrier
//   B  all: gate GEMM + cell for their hidden units                          | barrier
//   C  all: head GEMM for their head panels                                  | barrier
//   D  part 0: reward / done bookkeeping; all: sampling for their latent dims | barrier

size_t split_shared_bytes(const KernelArgs& a, int64_t n) {
  return carve(a, n, nullptr, nullptr) + static_cast<size_t>(n * round_up(a.Kg, kW)) * sizeof(float) + 128;
}

void run_rows_split(const KernelArgs& a, int64_t b0, int64_t n, void* shared, void* priv, int part, int parts,
                    SpinBarrier* bar) {
  Work sh, w;
  const size_t sh_bytes = carve(a, n, static_cast<unsigned char*>(shared), &sh);
  const size_t pv_bytes = carve(a, n, static_cast<unsigned char*>(priv), &w);
  w.X = sh.X;
  w.Cs = sh.Cs;
  w.G = sh.G;
  w.Hd = sh.Hd;
  w.U = sh.U;
  w.E = sh.E;
  w.row = sh.row;
  w.len = sh.len;
  w.ret = sh.ret;
  w.alive = sh.alive;
  float* X[2] = {sh.X, reinterpret_cast<float*>(
                           (reinterpret_cast<uintptr_t>(static_cast<unsigned char*>(shared) + sh_bytes) + 63) &
                           ~static_cast<uintptr_t>(63))};
  const int64_t Z = a.Z, A = a.A, H = a.H, B = a.B, ldx = w.ldx;
  const bool traj = a.tr_z != nullptr;
  {
    unsigned char* p = static_cast<unsigned char*>(priv);
    for (size_t i = 0; i < pv_bytes; ++i) p[i] = 0;
  }
  if (part == 0) {
    unsigned char* p = static_cast<unsigned char*>(shared);
    for (size_t i = 0; i < split_shared_bytes(a, n); ++i) p[i] = 0;
    for (int64_t s = 0; s < n; ++s) {
      w.row[s] = b0 + s;
      w.alive[s] = 1;
      copy_floats(X[0] + s * ldx, a.z0 + (b0 + s) * Z, Z);
    }
  }
  spin_barrier_wait(bar);
  const int64_t hq = a.Hp / kPanel, nph = a.Nh / kPanel, zc = (Z + kW - 1) / kW;
  const int64_t q0 = hq * part / parts, q1 = hq * (part + 1) / parts;
  const int64_t p0 = nph * part / parts, p1 = nph * (part + 1) / parts;
  const int64_t d0 = zc * part / parts * kW, d1 = zc * (part + 1) / parts * kW < Z ? zc * (part + 1) / parts * kW : Z;
  for (int64_t t = 0; t < a.T; ++t) {
    float* xc = X[t & 1];
    float* xn = X[(t + 1) & 1];
    if (part == 0) {  // A
      make_noise(a, w, n, t);
      for (int64_t s = 0; s < n; ++s) act(a, w, s, xc);
      if (traj) {
        for (int64_t s = 0; s < n; ++s) {
          const int64_t ob = t * B + w.row[s];
          const float* x = xc + s * ldx;
          copy_floats(a.tr_z + ob * Z, x, Z);
          copy_floats(a.tr_a + ob * A, x + Z, A);
          copy_floats(a.tr_h + ob * H, x + Z + A, H);
          a.tr_alive[ob] = w.alive[s] != 0;
        }
      }
      if (a.mask_z != nullptr) apply_masks(a, w, n, xc);
    }
    spin_barrier_wait(bar);
    for (int64_t g = 0; g < 4; ++g) {  // B
      const int64_t q = g * hq + q0;
      gemm(xc, ldx, n, a.gate_w + q * a.Kg * kPanel, a.Kg, q1 - q0, a.gate_b + q * kPanel, w.G + q * kPanel, a.Ng);
    }
    cell(a, w, n, q0 * kPanel, q1 * kPanel, xn);
    spin_barrier_wait(bar);
    gemm(xn + Z + A, ldx, n, a.head_w + p0 * H * kPanel, H, p1 - p0, a.head_b + p0 * kPanel,  // C
         w.Hd + p0 * kPanel, a.Nh);
    spin_barrier_wait(bar);
    if (part == 0) {  // D
      reward_and_done(a, w, n, t);
    }
    for (int64_t s = 0; s < n; ++s) sample(a, w, s, d0, d1, xn + s * ldx, xn + s * ldx);
    spin_barrier_wait(bar);
    if (!traj) {
      bool any = false;
      for (int64_t s = 0; s < n; ++s) any = any || w.alive[s];
      if (!any) break;
    }
  }
  if (part == 0) {
    for (int64_t s = 0; s < n; ++s) {
      a.returns[w.row[s]] = w.ret[s];
      a.lengths[w.row[s]] = w.len[s];
    }
  }
}

}  // namespace

extern const CpuKernel kernel = {WM_ISA_NAME, &workspace_bytes, &run_rows, &split_shared_bytes, &run_rows_split};

}  // namespace WM_ISA_NS
}  // namespace wm_fast

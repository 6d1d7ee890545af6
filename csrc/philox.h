// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// dream engine's noise layout. Plain C++, usable from host code and CUDA device code.
//
// Keying (the contract every backend follows, so that a rollout's noise depends only on
// (seed, candidate, rollout, step, lane) and never on thread count, tiling or batch split):
//   key     = {seed & 0xffffffff, seed >> 32}
//   counter = {purpose << 24 | block, step, rollout, candidate}   (candidate = 0 with CRN)
// One Philox call gives 4 words; block j covers lanes 4j .. 4j+3.
//   purpose 0 (kU):    u[t, d]   = uniform01(word d%4 of block d/4)
//   purpose 1 (kEps):  eps[t, d] : Box-Muller on the word pairs (w0, w1) -> lanes 4j, 4j+1 and
//                      (w2, w3) -> lanes 4j+2, 4j+3 of block j: r = sqrt(-2 ln u1), theta = 2 pi u2,
//                      lane 2m = r cos(theta), lane 2m+1 = r sin(theta)
//   purpose 2 (kInit): step word 0; block 0 word 0 picks the start index (w * N) >> 32, blocks
//                      1.. give init_eps with the same Box-Muller pairing (lane d from block 1 + d/4).
//   purpose 3 (kMask): dropout masks, one pair per rollout (no step): step word 0 (kMaskZ) for the
//                      mask on z (lanes 0 .. Z-1), 1 (kMaskH) for the mask on h (lanes 0 .. H-1);
//                      lane l is kept iff uniform01(word l%4 of block l/4) >= p, and its multiplier
//                      is then 1/(1-p) (inverted dropout), else 0. A separate purpose: the other
//                      streams are the same with or without dropout.
#pragma once

#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define WM_HD static __host__ __device__ __forceinline__
#define WM_UNROLL _Pragma("unroll")
#else
#define WM_HD static inline  // internal linkage: no ODR clash between per-ISA objects
#define WM_UNROLL _Pragma("GCC unroll 10")
#endif

namespace wm_fast {

enum NoisePurpose : uint32_t { kU = 0, kEps = 1, kInit = 2, kMask = 3 };
enum MaskKind : uint32_t { kMaskZ = 0, kMaskH = 1 };

struct Philox4 {
  uint32_t v[4];
};

WM_HD void philox_round(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0, uint32_t k1) {
  const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
  const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  const uint32_t n0 = hi1 ^ c1 ^ k0;
  const uint32_t n2 = hi0 ^ c3 ^ k1;
  c0 = n0;
  c1 = lo1;
  c2 = n2;
  c3 = lo0;
}

// Philox4x32 with 10 rounds. Known-answer: ctr = key = 0 -> {6627e8d5 e169c58d bc57ac4c 9b00dbd8}.
WM_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  WM_UNROLL
  for (int i = 0; i < 10; ++i) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

WM_HD Philox4 dream_philox(uint64_t seed, uint32_t purpose, uint32_t block, uint32_t step, uint32_t rollout,
                           uint32_t candidate) {
  return philox4x32_10((purpose << 24) | block, step, rollout, candidate, static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1): the top 24 bits.
WM_HD float uniform01(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
// Uniform in (0, 1]: for the logarithm of Box-Muller.
WM_HD float uniform01_open0(uint32_t w) { return static_cast<float>((w >> 8) + 1u) * (1.0f / 16777216.0f); }
// Index in [0, n) (n < 2^32).
WM_HD uint32_t uniform_index(uint32_t w, uint32_t n) {
  return static_cast<uint32_t>((static_cast<uint64_t>(w) * n) >> 32);
}

// Two standard normals from two words (Box-Muller): r cos(2 pi u2), r sin(2 pi u2) with
// r = sqrt(-2 ln u1), u1 = uniform01_open0(w1), u2 = uniform01(w2). (The CPU kernel computes the
// same formula with its own vectorised log / sincos.)
WM_HD void box_muller(uint32_t w1, uint32_t w2, float& n1, float& n2) {
  const float r = sqrtf(-2.0f * logf(uniform01_open0(w1)));
  const float th = 6.28318530717958648f * uniform01(w2);
  n1 = r * cosf(th);
  n2 = r * sinf(th);
}

// Initial latent noise of one rollout: the start index into a pool of n latents and
// eps[0..Z) (purpose kInit, step 0; index from block 0 word 0, eps from blocks 1 ..).
WM_HD uint32_t init_noise_index(uint64_t seed, uint32_t rollout, uint32_t candidate, uint32_t n) {
  return uniform_index(dream_philox(seed, kInit, 0, 0, rollout, candidate).v[0], n);
}
WM_HD float init_noise_eps(uint64_t seed, uint32_t rollout, uint32_t candidate, uint32_t d) {
  const Philox4 r = dream_philox(seed, kInit, 1 + d / 4, 0, rollout, candidate);
  float n1, n2;
  if ((d & 3) < 2)
    box_muller(r.v[0], r.v[1], n1, n2);
  else
    box_muller(r.v[2], r.v[3], n1, n2);
  return (d & 1) ? n2 : n1;
}

// Dropout multiplier of lane `lane` of a rollout's z mask (kMaskZ) or h mask (kMaskH): 0 or `scale`
// (= 1 / (1 - p)), kept with probability 1 - p (purpose kMask).
WM_HD float dropout_mask(uint64_t seed, uint32_t kind, uint32_t lane, uint32_t rollout, uint32_t candidate, float p,
                         float scale) {
  const Philox4 w = dream_philox(seed, kMask, lane / 4, kind, rollout, candidate);
  return uniform01(w.v[lane & 3]) >= p ? scale : 0.0f;
}

}  // namespace wm_fast

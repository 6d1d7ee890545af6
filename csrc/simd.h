// A 16-float vector for the CPU dream kernel, compiled once per instruction set:
//   __AVX512F__            one __m512
//   __AVX2__ && __FMA__    two __m256
//   otherwise              sixteen floats (plain loops; the portable fallback)
// Only dream_kernel.cpp includes this. It uses no std:: templates, so that the copies of
// the kernel compiled with different -march flags share no inline symbols (an AVX-512
// instantiation picked by the linker for a baseline caller would crash older CPUs).
//
// fma(a, b, c) is always one rounding (a hardware FMA) on the SIMD paths, so a row's GEMM
// result does not depend on which register-blocked micro-kernel computed it.
#pragma once

#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace wm_fast {
namespace WM_ISA_NS {

constexpr int kW = 16;  // lanes per vector

#if defined(__AVX512F__)

#define WM_ISA_NAME "avx512"
struct vf {
  __m512 v;
};
struct vm {
  __mmask16 m;
};
inline vf load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
// First n (0..16) lanes from p, zeros above.
inline vf loadn(const float* p, int n) { return {_mm512_maskz_loadu_ps(tail_mask(n), p)}; }
inline void store(float* p, vf a) { _mm512_storeu_ps(p, a.v); }
inline void storen(float* p, vf a, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), a.v); }
inline vf set1(float x) { return {_mm512_set1_ps(x)}; }
inline vf zero() { return {_mm512_setzero_ps()}; }
inline vf fma(vf a, vf b, vf c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline vf operator+(vf a, vf b) { return {_mm512_add_ps(a.v, b.v)}; }
inline vf operator-(vf a, vf b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline vf operator*(vf a, vf b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline vf operator/(vf a, vf b) { return {_mm512_div_ps(a.v, b.v)}; }
inline vf vmax(vf a, vf b) { return {_mm512_max_ps(a.v, b.v)}; }
inline vf vmin(vf a, vf b) { return {_mm512_min_ps(a.v, b.v)}; }
inline vf vsqrt(vf a) { return {_mm512_sqrt_ps(a.v)}; }
inline vf vfloor(vf a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }
inline vm operator<=(vf a, vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
inline vm operator<(vf a, vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
inline vm operator==(vf a, vf b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
inline vf select(vm m, vf a, vf b) { return {_mm512_mask_blend_ps(m.m, b.v, a.v)}; }  // m ? a : b
inline float hsum(vf a) { return _mm512_reduce_add_ps(a.v); }
// 2^n for integral-valued n, times p.
inline vf scale2(vf p, vf n) { return {_mm512_scalef_ps(p.v, n.v)}; }
// Unsigned 32-bit words -> their top 24 bits as floats (exact).
inline vf u32_top24(const uint32_t* w) {
  __m512i x = _mm512_loadu_si512(reinterpret_cast<const void*>(w));
  return {_mm512_cvtepi32_ps(_mm512_srli_epi32(x, 8))};
}
// x = m * 2^e with m in [0.5, 1) (x > 0 normal).
inline void frexp(vf x, vf& m, vf& e) {
  // getexp gives floor(log2 x); getmant with [1, 2) interval
  e = {_mm512_add_ps(_mm512_getexp_ps(x.v), _mm512_set1_ps(1.0f))};
  m = {_mm512_mul_ps(_mm512_getmant_ps(x.v, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src), _mm512_set1_ps(0.5f))};
}

#elif defined(__AVX2__) && defined(__FMA__)

#define WM_ISA_NAME "avx2"
struct vf {
  __m256 lo, hi;
};
struct vm {
  __m256 lo, hi;
};
inline vf load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline __m256i mask8(int n) {  // lanes < n all-ones
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}
inline vf loadn(const float* p, int n) {
  return {_mm256_maskload_ps(p, mask8(n)), _mm256_maskload_ps(p + 8, mask8(n - 8))};
}
inline void store(float* p, vf a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
inline void storen(float* p, vf a, int n) {
  _mm256_maskstore_ps(p, mask8(n), a.lo);
  _mm256_maskstore_ps(p + 8, mask8(n - 8), a.hi);
}
inline vf set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline vf zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline vf fma(vf a, vf b, vf c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
inline vf operator+(vf a, vf b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline vf operator-(vf a, vf b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline vf operator*(vf a, vf b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline vf operator/(vf a, vf b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
inline vf vmax(vf a, vf b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
inline vf vmin(vf a, vf b) { return {_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
inline vf vsqrt(vf a) { return {_mm256_sqrt_ps(a.lo), _mm256_sqrt_ps(a.hi)}; }
inline vf vfloor(vf a) { return {_mm256_floor_ps(a.lo), _mm256_floor_ps(a.hi)}; }
inline vm operator<=(vf a, vf b) { return {_mm256_cmp_ps(a.lo, b.lo, _CMP_LE_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_LE_OQ)}; }
inline vm operator<(vf a, vf b) { return {_mm256_cmp_ps(a.lo, b.lo, _CMP_LT_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_LT_OQ)}; }
inline vm operator==(vf a, vf b) { return {_mm256_cmp_ps(a.lo, b.lo, _CMP_EQ_OQ), _mm256_cmp_ps(a.hi, b.hi, _CMP_EQ_OQ)}; }
inline vf select(vm m, vf a, vf b) { return {_mm256_blendv_ps(b.lo, a.lo, m.lo), _mm256_blendv_ps(b.hi, a.hi, m.hi)}; }
inline float hsum8(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hsum(vf a) { return hsum8(_mm256_add_ps(a.lo, a.hi)); }
inline __m256 scale2_8(__m256 p, __m256 n) {
  // n integral in [-126, 127] after the caller's clamp
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
inline vf scale2(vf p, vf n) { return {scale2_8(p.lo, n.lo), scale2_8(p.hi, n.hi)}; }
inline vf u32_top24(const uint32_t* w) {
  __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 8));
  return {_mm256_cvtepi32_ps(_mm256_srli_epi32(a, 8)), _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 8))};
}
inline void frexp8(__m256 x, __m256& m, __m256& e) {
  __m256i xi = _mm256_castps_si256(x);
  __m256i ei = _mm256_sub_epi32(_mm256_srli_epi32(xi, 23), _mm256_set1_epi32(126));
  e = _mm256_cvtepi32_ps(ei);
  m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(xi, _mm256_set1_epi32(0x007FFFFF)),
                                          _mm256_set1_epi32(0x3F000000)));
}
inline void frexp(vf x, vf& m, vf& e) {
  frexp8(x.lo, m.lo, e.lo);
  frexp8(x.hi, m.hi, e.hi);
}

#else

#define WM_ISA_NAME "generic"
struct vf {
  float v[16];
};
struct vm {
  bool m[16];
};
#define WM_LANES for (int i = 0; i < 16; ++i)
inline vf load(const float* p) { vf r; WM_LANES r.v[i] = p[i]; return r; }
inline vf loadn(const float* p, int n) { vf r; WM_LANES r.v[i] = i < n ? p[i] : 0.0f; return r; }
inline void store(float* p, vf a) { WM_LANES p[i] = a.v[i]; }
inline void storen(float* p, vf a, int n) { WM_LANES if (i < n) p[i] = a.v[i]; }
inline vf set1(float x) { vf r; WM_LANES r.v[i] = x; return r; }
inline vf zero() { return set1(0.0f); }
inline vf fma(vf a, vf b, vf c) { vf r; WM_LANES r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r; }
inline vf operator+(vf a, vf b) { vf r; WM_LANES r.v[i] = a.v[i] + b.v[i]; return r; }
inline vf operator-(vf a, vf b) { vf r; WM_LANES r.v[i] = a.v[i] - b.v[i]; return r; }
inline vf operator*(vf a, vf b) { vf r; WM_LANES r.v[i] = a.v[i] * b.v[i]; return r; }
inline vf operator/(vf a, vf b) { vf r; WM_LANES r.v[i] = a.v[i] / b.v[i]; return r; }
inline vf vmax(vf a, vf b) { vf r; WM_LANES r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return r; }
inline vf vmin(vf a, vf b) { vf r; WM_LANES r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i]; return r; }
inline vf vsqrt(vf a) { vf r; WM_LANES r.v[i] = __builtin_sqrtf(a.v[i]); return r; }
inline vf vfloor(vf a) { vf r; WM_LANES r.v[i] = __builtin_floorf(a.v[i]); return r; }
inline vm operator<=(vf a, vf b) { vm r; WM_LANES r.m[i] = a.v[i] <= b.v[i]; return r; }
inline vm operator<(vf a, vf b) { vm r; WM_LANES r.m[i] = a.v[i] < b.v[i]; return r; }
inline vm operator==(vf a, vf b) { vm r; WM_LANES r.m[i] = a.v[i] == b.v[i]; return r; }
inline vf select(vm m, vf a, vf b) { vf r; WM_LANES r.v[i] = m.m[i] ? a.v[i] : b.v[i]; return r; }
inline float hsum(vf a) {
  float s = 0.0f;
  WM_LANES s += a.v[i];
  return s;
}
inline vf scale2(vf p, vf n) { vf r; WM_LANES r.v[i] = __builtin_ldexpf(p.v[i], static_cast<int>(n.v[i])); return r; }
inline vf u32_top24(const uint32_t* w) { vf r; WM_LANES r.v[i] = static_cast<float>(w[i] >> 8); return r; }
inline void frexp(vf x, vf& m, vf& e) {
  WM_LANES {
    int ex;
    m.v[i] = __builtin_frexpf(x.v[i], &ex);
    e.v[i] = static_cast<float>(ex);
  }
}
#undef WM_LANES

#endif

inline vf operator*(vf a, float b) { return a * set1(b); }
inline vf operator+(vf a, float b) { return a + set1(b); }

// exp(x), Cephes-style: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial; x clamped to [-87, 87]
// (so sigmoid/tanh of huge arguments saturate instead of overflowing). Max rel. error ~2e-7.
inline vf vexp(vf x) {
  x = vmin(vmax(x, set1(-87.0f)), set1(87.0f));
  vf n = vfloor(fma(x, set1(1.44269504088896341f), set1(0.5f)));
  vf r = fma(n, set1(-0.693359375f), x);
  r = fma(n, set1(2.12194440e-4f), r);
  vf p = set1(1.9875691500E-4f);
  p = fma(p, r, set1(1.3981999507E-3f));
  p = fma(p, r, set1(8.3334519073E-3f));
  p = fma(p, r, set1(4.1665795894E-2f));
  p = fma(p, r, set1(1.6666665459E-1f));
  p = fma(p, r, set1(5.0000001201E-1f));
  vf r2 = r * r;
  p = fma(p, r2, r + set1(1.0f));
  return scale2(p, n);
}

// Natural log for x > 0 (Cephes logf). Max rel. error ~1e-7 on normal inputs.
inline vf vlog(vf x) {
  vf m, e;
  frexp(x, m, e);  // m in [0.5, 1)
  vm small = m < set1(0.707106781186547524f);
  e = select(small, e - set1(1.0f), e);
  m = select(small, m + m - set1(1.0f), m - set1(1.0f));
  vf z = m * m;
  vf y = set1(7.0376836292E-2f);
  y = fma(y, m, set1(-1.1514610310E-1f));
  y = fma(y, m, set1(1.1676998740E-1f));
  y = fma(y, m, set1(-1.2420140846E-1f));
  y = fma(y, m, set1(1.4249322787E-1f));
  y = fma(y, m, set1(-1.6668057665E-1f));
  y = fma(y, m, set1(2.0000714765E-1f));
  y = fma(y, m, set1(-2.4999993993E-1f));
  y = fma(y, m, set1(3.3333331174E-1f));
  y = y * m * z;
  y = fma(e, set1(-2.12194440e-4f), y);
  y = fma(z, set1(-0.5f), y);
  vf r = m + y;
  return fma(e, set1(0.693359375f), r);
}

inline vf vsigmoid(vf x) { return set1(1.0f) / (set1(1.0f) + vexp(set1(0.0f) - x)); }
inline vf vtanh(vf x) { return set1(2.0f) / (set1(1.0f) + vexp(x * -2.0f)) - set1(1.0f); }

// cos(2 pi u), sin(2 pi u) for u in [0, 1): quadrant q = floor(4u), r = 2 pi (u - q/4) in [0, pi/2).
inline void vsincos2pi(vf u, vf& c, vf& s) {
  vf q = vfloor(u * 4.0f);
  vf r = (u - q * 0.25f) * 6.28318530717958648f;
  vf r2 = r * r;
  // Taylor series to r^11 / r^12 (error < 4e-8 on [0, pi/2])
  vf sp = set1(-2.5052108385441720e-08f);
  sp = fma(sp, r2, set1(2.7557319223985893e-06f));
  sp = fma(sp, r2, set1(-1.9841269841269841e-04f));
  sp = fma(sp, r2, set1(8.3333333333333333e-03f));
  sp = fma(sp, r2, set1(-1.6666666666666667e-01f));
  vf sr = fma(sp * r2, r, r);
  vf cp = set1(2.0876756987868099e-09f);
  cp = fma(cp, r2, set1(-2.7557319223985888e-07f));
  cp = fma(cp, r2, set1(2.4801587301587302e-05f));
  cp = fma(cp, r2, set1(-1.3888888888888889e-03f));
  cp = fma(cp, r2, set1(4.1666666666666667e-02f));
  cp = fma(cp, r2, set1(-0.5f));
  vf cr = fma(cp, r2, set1(1.0f));
  vf neg_s = zero() - sr, neg_c = zero() - cr;
  vm q1 = q == set1(1.0f), q2 = q == set1(2.0f), q3 = q == set1(3.0f);
  c = select(q1, neg_s, select(q2, neg_c, select(q3, sr, cr)));
  s = select(q1, cr, select(q2, neg_s, select(q3, neg_c, sr)));
}

}  // namespace WM_ISA_NS
}  // namespace wm_fast

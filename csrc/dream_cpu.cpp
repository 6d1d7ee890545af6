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

// ---------------------------------------------------------------------------------------
// The dream op's CPU backend: packs the weights into GEMM panels, computes the initial
// latents, and runs the kernel over tiles of rollouts on at::parallel_for threads.

#include <atomic>
#include <limits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dream_kernel.h"
#include "philox.h"

namespace wm_fast {
namespace {

struct IsaEntry {
  const CpuKernel* kernel;
  bool supported;
};

std::vector<IsaEntry> isa_table() {
  std::vector<IsaEntry> t;
  t.push_back({&generic::kernel, true});
#if defined(WM_HAVE_AVX2)
  __builtin_cpu_init();
  t.push_back({&avx2::kernel, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")});
#endif
#if defined(WM_HAVE_AVX512)
  t.push_back({&avx512::kernel, __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                                    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                                    __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")});
#endif
  return t;
}

const CpuKernel* best_kernel() {
  const auto table = isa_table();
  const CpuKernel* best = table.front().kernel;
  for (const auto& e : table)
    if (e.supported) best = e.kernel;
  // WM_FAST_CPU_ISA=<name> pins a (supported) variant, e.g. to compare them.
  if (const char* env = std::getenv("WM_FAST_CPU_ISA")) {
    for (const auto& e : table)
      if (e.supported && std::strcmp(e.kernel->name, env) == 0) best = e.kernel;
  }
  return best;
}

std::atomic<const CpuKernel*>& current_kernel() {
  static std::atomic<const CpuKernel*> k{best_kernel()};
  return k;
}

// Rows of at most this many rollouts per tile: small enough for the tile's state to stay in
// L1/L2, big enough for the register-blocked GEMM micro-kernels.
constexpr int64_t kMaxTile = 32;

struct Packed {
  std::vector<float> gate_w, gate_b, head_w, head_b, mls_w, mls_b, z0, mask_z, mask_h;
};

void pack_weights(const DreamSpec& s, const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& b_ih,
                  const at::Tensor& b_hh, const at::Tensor& head_w, const at::Tensor& head_b, KernelArgs& a,
                  Packed& pk) {
  const int64_t Z = s.Z, A = s.A, H = s.H, Hp = round_up(H, kPanel), Kg = Z + A + H;
  const int64_t Ng = 4 * Hp, L = s.L, Nh = round_up(L + 2, kPanel);
  const float* wi = w_ih.data_ptr<float>();
  const float* wh = w_hh.data_ptr<float>();
  const float* bi = b_ih.data_ptr<float>();
  const float* bh = b_hh.data_ptr<float>();
  const float* hw = head_w.data_ptr<float>();
  const float* hb = head_b.data_ptr<float>();
  // Gates: column n = g * Hp + j  <->  weight row g * H + j (zero for j >= H).
  pk.gate_w.assign(static_cast<size_t>(Ng * Kg), 0.0f);
  pk.gate_b.assign(static_cast<size_t>(Ng), 0.0f);
  for (int64_t g = 0; g < 4; ++g) {
    for (int64_t j = 0; j < H; ++j) {
      const int64_t col = g * Hp + j, row = g * H + j;
      float* panel = pk.gate_w.data() + (col / kPanel) * Kg * kPanel + col % kPanel;
      for (int64_t k = 0; k < Z + A; ++k) panel[k * kPanel] = wi[row * (Z + A) + k];
      for (int64_t k = 0; k < H; ++k) panel[(Z + A + k) * kPanel] = wh[row * H + k];
      pk.gate_b[col] = bi[row] + bh[row];
    }
  }
  // Head: logits rows 0..L-1, then reward (row D-2) and done (row D-1).
  pk.head_w.assign(static_cast<size_t>(Nh * H), 0.0f);
  pk.head_b.assign(static_cast<size_t>(Nh), 0.0f);
  for (int64_t col = 0; col < L + 2; ++col) {
    const int64_t row = col < L ? col : s.D - 2 + (col - L);
    float* panel = pk.head_w.data() + (col / kPanel) * H * kPanel + col % kPanel;
    for (int64_t k = 0; k < H; ++k) panel[k * kPanel] = hw[row * H + k];
    pk.head_b[col] = hb[row];
  }
  // mu / logsigma rows j = k * Z + d side by side.
  const int64_t KZ = s.K * Z;
  pk.mls_w.resize(static_cast<size_t>(KZ * 2 * H));
  pk.mls_b.resize(static_cast<size_t>(KZ * 2));
  for (int64_t j = 0; j < KZ; ++j) {
    std::memcpy(pk.mls_w.data() + j * 2 * H, hw + (L + j) * H, H * sizeof(float));
    std::memcpy(pk.mls_w.data() + j * 2 * H + H, hw + (L + KZ + j) * H, H * sizeof(float));
    pk.mls_b[2 * j] = hb[L + j];
    pk.mls_b[2 * j + 1] = hb[L + KZ + j];
  }
  a.Hp = static_cast<int32_t>(Hp);
  a.Kg = static_cast<int32_t>(Kg);
  a.Ng = static_cast<int32_t>(Ng);
  a.Nh = static_cast<int32_t>(Nh);
  a.gate_w = pk.gate_w.data();
  a.gate_b = pk.gate_b.data();
  a.head_w = pk.head_w.data();
  a.head_b = pk.head_b.data();
  a.mls_w = pk.mls_w.data();
  a.mls_b = pk.mls_b.data();
}

// z_0 = mu_i + exp(logvar_i / 2) eps for every rollout (injected or Philox noise).
void initial_latents(const DreamSpec& s, const at::Tensor& mu_t, const at::Tensor& logvar_t,
                     const at::Tensor* index_t, const at::Tensor* eps_t, std::vector<float>& z0) {
  const int64_t B = s.P * s.R, Z = s.Z;
  z0.resize(static_cast<size_t>(B * Z));
  const float* mu = mu_t.data_ptr<float>();
  const float* lv = logvar_t.data_ptr<float>();
  const int64_t* idx = index_t ? index_t->data_ptr<int64_t>() : nullptr;
  const float* eps = eps_t ? eps_t->data_ptr<float>() : nullptr;
  at::parallel_for(0, B, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const uint32_t r = static_cast<uint32_t>(b % s.R);
      const uint32_t p = s.crn ? 0u : static_cast<uint32_t>(b / s.R);
      const int64_t i = idx ? idx[b] : init_noise_index(s.seed, r, p, static_cast<uint32_t>(s.N));
      for (int64_t d = 0; d < Z; ++d) {
        const float e = eps ? eps[b * Z + d] : init_noise_eps(s.seed, r, p, static_cast<uint32_t>(d));
        z0[b * Z + d] = mu[i * Z + d] + std::exp(0.5f * lv[i * Z + d]) * e;
      }
    }
  });
}

// The Philox dropout masks of every rollout b = p * R + r: mz (B x Z), mh (B x H) (philox.h, kMask).
void fill_dropout_masks(uint64_t seed, int64_t P, int64_t R, int64_t Z, int64_t H, float p, float scale, bool crn,
                        float* mz, float* mh) {
  at::parallel_for(0, P * R, 64, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const uint32_t r = static_cast<uint32_t>(b % R);
      const uint32_t c = crn ? 0u : static_cast<uint32_t>(b / R);
      for (int64_t d = 0; d < Z; ++d)
        mz[b * Z + d] = dropout_mask(seed, kMaskZ, static_cast<uint32_t>(d), r, c, p, scale);
      for (int64_t j = 0; j < H; ++j)
        mh[b * H + j] = dropout_mask(seed, kMaskH, static_cast<uint32_t>(j), r, c, p, scale);
    }
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> philox_dream_masks(int64_t seed, int64_t P, int64_t R, int64_t Z, int64_t H,
                                                      double dropout, bool common_random_numbers) {
  TORCH_CHECK_VALUE(P > 0 && R > 0 && Z > 0 && H > 0, "P, R, Z and H must be positive");
  TORCH_CHECK_VALUE(P * R <= std::numeric_limits<int32_t>::max(), "P * R must be < 2^31");
  TORCH_CHECK_VALUE(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1), got ", dropout);
  auto mz = at::empty({P, R, Z}, at::kFloat), mh = at::empty({P, R, H}, at::kFloat);
  fill_dropout_masks(static_cast<uint64_t>(seed), P, R, Z, H, static_cast<float>(dropout),
                     static_cast<float>(1.0 / (1.0 - dropout)), common_random_numbers, mz.data_ptr<float>(),
                     mh.data_ptr<float>());
  return {mz, mh};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> philox_dream_noise(int64_t seed, int64_t P, int64_t R,
                                                                            int64_t T, int64_t Z, int64_t N,
                                                                            bool common_random_numbers) {
  TORCH_CHECK_VALUE(P > 0 && R > 0 && T > 0 && Z > 0 && N > 0, "P, R, T, Z and N must be positive");
  TORCH_CHECK_VALUE(P * R <= std::numeric_limits<int32_t>::max() && T <= std::numeric_limits<int32_t>::max() &&
                        N <= std::numeric_limits<int32_t>::max(),
                    "sizes must be < 2^31");
  const uint64_t key = static_cast<uint64_t>(seed);
  auto index = at::empty({P, R}, at::kLong);
  auto init_eps = at::empty({P, R, Z}, at::kFloat);
  auto u = at::empty({T, P, R, Z}, at::kFloat);
  auto eps = at::empty({T, P, R, Z}, at::kFloat);
  int64_t* ip = index.data_ptr<int64_t>();
  float* ie = init_eps.data_ptr<float>();
  float* up = u.data_ptr<float>();
  float* ep = eps.data_ptr<float>();
  const int64_t B = P * R;
  at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const uint32_t r = static_cast<uint32_t>(b % R);
      const uint32_t p = common_random_numbers ? 0u : static_cast<uint32_t>(b / R);
      ip[b] = init_noise_index(key, r, p, static_cast<uint32_t>(N));
      for (int64_t d = 0; d < Z; ++d) ie[b * Z + d] = init_noise_eps(key, r, p, static_cast<uint32_t>(d));
      for (int64_t t = 0; t < T; ++t) {
        float* ur = up + (t * B + b) * Z;
        float* er = ep + (t * B + b) * Z;
        for (int64_t j = 0; 4 * j < Z; ++j) {
          const auto w = dream_philox(key, kU, static_cast<uint32_t>(j), static_cast<uint32_t>(t), r, p);
          const auto v = dream_philox(key, kEps, static_cast<uint32_t>(j), static_cast<uint32_t>(t), r, p);
          float n[4];
          box_muller(v.v[0], v.v[1], n[0], n[1]);
          box_muller(v.v[2], v.v[3], n[2], n[3]);
          for (int64_t l = 0; l < 4 && 4 * j + l < Z; ++l) {
            ur[4 * j + l] = uniform01(w.v[l]);
            er[4 * j + l] = n[l];
          }
        }
      }
    }
  });
  return {index, init_eps, u, eps};
}

std::vector<int64_t> philox4x32_10_words(const std::vector<int64_t>& ctr, const std::vector<int64_t>& key) {
  TORCH_CHECK_VALUE(ctr.size() == 4 && key.size() == 2, "ctr must hold 4 words and key 2");
  const auto w = philox4x32_10(static_cast<uint32_t>(ctr[0]), static_cast<uint32_t>(ctr[1]),
                               static_cast<uint32_t>(ctr[2]), static_cast<uint32_t>(ctr[3]),
                               static_cast<uint32_t>(key[0]), static_cast<uint32_t>(key[1]));
  return {w.v[0], w.v[1], w.v[2], w.v[3]};
}

std::vector<std::string> cpu_isas() {
  std::vector<std::string> names;
  for (const auto& e : isa_table())
    if (e.supported) names.emplace_back(e.kernel->name);
  return names;
}

std::string cpu_isa() { return current_kernel().load()->name; }

void set_cpu_isa(const std::string& name) {
  for (const auto& e : isa_table()) {
    if (name == e.kernel->name) {
      TORCH_CHECK_VALUE(e.supported, "cpu isa '", name, "' is compiled in but this CPU does not support it");
      current_kernel().store(e.kernel);
      return;
    }
  }
  TORCH_CHECK_VALUE(false, "cpu isa must be one of ", c10::Join(", ", cpu_isas()), ", got '", name, "'");
}

DreamOutputs dream_cpu(WM_DREAM_ARGS) {
  const DreamSpec s = check_dream_args(WM_DREAM_ARG_NAMES, c10::Device(c10::kCPU));
  auto out = allocate_dream_outputs(s, params.options());
  const auto wi = w_ih.contiguous(), wh = w_hh.contiguous(), bi = b_ih.contiguous(), bh = b_hh.contiguous();
  const auto hw = head_w.contiguous(), hb = head_b.contiguous(), pr = params.contiguous();
  const auto mu = init_mu.contiguous(), lv = init_logvar.contiguous();
  at::Tensor idx, ieps, nu, ne, mz, mh;
  if (s.masks_injected) {
    mz = mask_z->contiguous();
    mh = mask_h->contiguous();
  }
  if (s.injected) {
    idx = init_index->contiguous();
    ieps = init_eps->contiguous();
    nu = noise_u->contiguous();
    ne = noise_eps->contiguous();
  }

  KernelArgs a;
  static_cast<DreamScalars&>(a) = dream_scalars(s);
  Packed pk;
  pack_weights(s, wi, wh, bi, bh, hw, hb, a, pk);
  initial_latents(s, mu, lv, s.injected ? &idx : nullptr, s.injected ? &ieps : nullptr, pk.z0);
  a.params = pr.data_ptr<float>();
  a.z0 = pk.z0.data();
  if (s.injected) {
    a.noise_u = nu.data_ptr<float>();
    a.noise_eps = ne.data_ptr<float>();
  }
  if (s.masks_injected) {
    a.mask_z = mz.data_ptr<float>();
    a.mask_h = mh.data_ptr<float>();
  } else if (s.dropout > 0.0f) {
    pk.mask_z.resize(static_cast<size_t>(s.P * s.R * s.Z));
    pk.mask_h.resize(static_cast<size_t>(s.P * s.R * s.H));
    fill_dropout_masks(s.seed, s.P, s.R, s.Z, s.H, s.dropout, s.dropout_scale, s.crn, pk.mask_z.data(),
                       pk.mask_h.data());
    a.mask_z = pk.mask_z.data();
    a.mask_h = pk.mask_h.data();
  }
  static_cast<DreamOutputPtrs&>(a) = dream_output_ptrs(s, out);

  const CpuKernel* kernel = current_kernel().load();
  const int64_t B = a.B, threads = std::max<int64_t>(1, at::get_num_threads());
  auto aligned = [](std::unique_ptr<unsigned char[]>& buf, size_t bytes) {
    buf.reset(new unsigned char[bytes + 64]);
    return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.get()) + 63) & ~uintptr_t(63));
  };

  // Small batches (fewer than 3 rows per part, up to 4 parts): a thread's GEMMs on so few rows
  // are bound by streaming M's weights from L2, so the threads share the rows and split the
  // weights instead (split mode, bitwise the same results; measured 2.4x at batch 1 on 2 cores).
  // The threads must run at the same time: if the team that at::parallel_for forms is smaller
  // than asked for, one thread runs the normal path alone.
  const int64_t parts = std::min<int64_t>(threads, 4);
  if (parts >= 2 && B < 3 * parts && !at::in_parallel_region()) {
    // All scratch memory first: nothing may throw once the threads wait for each other.
    std::unique_ptr<unsigned char[]> shared_buf;
    void* shared = aligned(shared_buf, kernel->split_shared_bytes(a, B));
    std::vector<std::unique_ptr<unsigned char[]>> priv_bufs(parts);
    std::vector<void*> priv(parts);
    for (int64_t p = 0; p < parts; ++p) priv[p] = aligned(priv_bufs[p], kernel->workspace_bytes(a, B));
    SpinBarrier barrier;
    barrier.parties = static_cast<int>(parts);
    std::atomic<int> arrived{0}, degraded{0};
    at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
      if (p1 - p0 != 1)
        degraded.store(1);
      else
        arrived.fetch_add(1);
      for (int spins = 0; !degraded.load() && arrived.load() < parts; ++spins) {
        if (spins < 4000)
          spin_pause();
        else
          sched_yield();
      }
      if (degraded.load()) {
        if (p0 == 0) kernel->run_rows(a, 0, B, priv[0]);
        return;
      }
      kernel->run_rows_split(a, 0, B, shared, priv[p0], static_cast<int>(p0), static_cast<int>(parts), &barrier);
    });
    return out;
  }

  // Tiles: B rows split evenly into n_tiles tiles of at most kMaxTile rows (at least one per
  // thread when there are enough rows); workers take tiles from a shared counter.
  const int64_t n_tiles = std::max((B + kMaxTile - 1) / kMaxTile, std::min(B, threads));
  const int64_t tile_rows = (B + n_tiles - 1) / n_tiles;
  const size_t ws_bytes = kernel->workspace_bytes(a, tile_rows);
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min(threads, n_tiles);
  at::parallel_for(0, workers, 1, [&](int64_t w0, int64_t w1) {
    std::unique_ptr<unsigned char[]> ws_buf;
    void* base = aligned(ws_buf, ws_bytes);
    for (int64_t wk = w0; wk < w1; ++wk) {
      for (int64_t t; (t = next.fetch_add(1)) < n_tiles;) {
        const int64_t b0 = t * B / n_tiles, b1 = (t + 1) * B / n_tiles;
        if (b1 > b0) kernel->run_rows(a, b0, b1 - b0, base);
      }
    }
  });
  return out;
}

}  // namespace wm_fast

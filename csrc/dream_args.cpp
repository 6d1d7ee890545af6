// Argument checking and output allocation shared by the dream backends.
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "dream.h"
#include "dream_kernel.h"

namespace wm_fast {
namespace {

void check_tensor(const at::Tensor& t, const char* name, at::ScalarType dtype, int64_t dim, const c10::Device& dev) {
  TORCH_CHECK_VALUE(t.defined(), name, " must be a tensor, got None");
  TORCH_CHECK_VALUE(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == dim, name, " must be ", dim, "-D, got ", t.dim(), "-D with shape ", t.sizes());
  TORCH_CHECK_VALUE(t.device() == dev, name, " must be on ", dev, " (the backend's device), got ", t.device());
}

void check_shape(const at::Tensor& t, const char* name, at::IntArrayRef expected, const char* meaning) {
  TORCH_CHECK_VALUE(t.sizes() == expected, name, " must have shape ", expected, " ", meaning, ", got ", t.sizes());
}

void check_finite(const at::Tensor& t, const char* name) {
  if (t.numel() == 0) return;
  bool ok;
  if (t.is_cpu() && t.is_contiguous()) {
    const float* p = t.data_ptr<float>();
    const int64_t n = t.numel();
    float acc = 0.0f;  // NaN or inf anywhere makes the product-with-zero sum NaN
    for (int64_t i = 0; i < n; ++i) acc += p[i] * 0.0f;
    ok = acc == 0.0f;
  } else {
    ok = at::isfinite(t).all().item<bool>();
  }
  TORCH_CHECK_VALUE(ok, name, " holds NaN or infinite values");
}

int32_t parse_choice(c10::string_view v, const char* name, std::initializer_list<const char*> choices) {
  int32_t i = 0;
  for (const char* c : choices) {
    if (v == c10::string_view(c)) return i;
    ++i;
  }
  std::ostringstream all;
  i = 0;
  for (const char* c : choices) all << (i++ ? ", '" : "'") << c << "'";
  TORCH_CHECK_VALUE(false, name, " must be one of ", all.str(), ", got '", std::string(v.data(), v.size()), "'");
  return -1;
}

}  // namespace

DreamSpec check_dream_args(WM_DREAM_ARGS, const c10::Device& dev) {
  DreamSpec s{};
  const auto f32 = at::kFloat;
  // Options first (cheap, and the clearest messages).
  TORCH_CHECK_VALUE(steps > 0, "steps must be positive, got ", steps);
  TORCH_CHECK_VALUE(steps <= std::numeric_limits<int32_t>::max(), "steps must be < 2^31, got ", steps);
  TORCH_CHECK_VALUE(rollouts > 0, "rollouts must be positive, got ", rollouts);
  TORCH_CHECK_VALUE(rollouts <= std::numeric_limits<int32_t>::max(), "rollouts must be < 2^31, got ", rollouts);
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0.0, "temperature must be positive and finite, got ",
                    temperature);
  TORCH_CHECK_VALUE(done_threshold > 0.0 && done_threshold < 1.0, "done_threshold must be in (0, 1), got ",
                    done_threshold);
  TORCH_CHECK_VALUE(dropout >= 0.0 && dropout < 1.0, "dropout must be in [0, 1), got ", dropout);
  s.mapping = parse_choice(action_mapping, "action_mapping", {"carracing", "threshold", "argmax"});
  s.cinput = parse_choice(controller_input, "controller_input", {"zh", "zch"});
  s.reward_alive = parse_choice(reward_source, "reward_source", {"model", "alive"}) == 1;
  s.layout = parse_choice(layout, "layout", {"shared", "per_dim"}) == 0 ? kShared : kPerDim;

  // M's weights.
  check_tensor(init_mu, "init_mu", f32, 2, dev);
  check_tensor(init_logvar, "init_logvar", f32, 2, dev);
  check_tensor(w_ih, "w_ih", f32, 2, dev);
  check_tensor(w_hh, "w_hh", f32, 2, dev);
  check_tensor(b_ih, "b_ih", f32, 1, dev);
  check_tensor(b_hh, "b_hh", f32, 1, dev);
  check_tensor(head_w, "head_w", f32, 2, dev);
  check_tensor(head_b, "head_b", f32, 1, dev);
  check_tensor(params, "params", f32, 2, dev);
  const int64_t N = init_mu.size(0), Z = init_mu.size(1);
  TORCH_CHECK_VALUE(N > 0 && Z > 0, "init_mu must be (N > 0, Z > 0), got ", init_mu.sizes());
  TORCH_CHECK_VALUE(N <= std::numeric_limits<int32_t>::max(), "init_mu holds too many latents (", N, ")");
  check_shape(init_logvar, "init_logvar", init_mu.sizes(), "(like init_mu)");
  const int64_t H = w_hh.size(1);
  TORCH_CHECK_VALUE(H > 0 && w_hh.size(0) == 4 * H, "w_hh must be (4H, H) with H > 0, got ", w_hh.sizes());
  TORCH_CHECK_VALUE(w_ih.size(0) == 4 * H && w_ih.size(1) > Z, "w_ih must be (4H, Z + A) = (", 4 * H, ", ", Z,
                    " + A) with A > 0 (Z from init_mu, H from w_hh), got ", w_ih.sizes());
  const int64_t A = w_ih.size(1) - Z;
  check_shape(b_ih, "b_ih", {4 * H}, "(4H)");
  check_shape(b_hh, "b_hh", {4 * H}, "(4H)");
  TORCH_CHECK_VALUE(head_w.size(1) == H, "head_w must be (D, H) with H = ", H, ", got ", head_w.sizes());
  const int64_t D = head_w.size(0);
  const int64_t per_k = s.layout == kShared ? 2 * Z + 1 : 3 * Z;
  TORCH_CHECK_VALUE(D > 2 && (D - 2) % per_k == 0,
                    "head_w has ", D, " rows, which is not K ", (s.layout == kShared ? "+ 2KZ + 2" : "* 3Z + 2"),
                    " for Z = ", Z, " and any K >= 1 (layout '", std::string(layout.data(), layout.size()), "')");
  const int64_t K = (D - 2) / per_k;
  check_shape(head_b, "head_b", {D}, "(D, the rows of head_w)");

  // The controller.
  const int64_t n_in = Z + (s.cinput == kZCH ? 2 : 1) * H;
  const int64_t n_out = s.mapping == kThreshold ? 1 : A;
  if (s.mapping == kCarRacing)
    TORCH_CHECK_VALUE(A <= 3, "action_mapping 'carracing' gives at most 3 actions (steer, gas, brake), but M takes A = ",
                      A);
  if (s.mapping == kThreshold)
    TORCH_CHECK_VALUE(A == 1, "action_mapping 'threshold' gives 1 action, but M takes A = ", A);
  const int64_t n = n_out * n_in + n_out;
  const int64_t P = params.size(0);
  TORCH_CHECK_VALUE(P > 0, "params must hold at least one candidate (P > 0), got ", params.sizes());
  TORCH_CHECK_VALUE(params.size(1) == n, "params must be (P, ", n, ") for a controller with ", n_in, " inputs and ",
                    n_out, " outputs, got ", params.sizes());
  TORCH_CHECK_VALUE(P <= std::numeric_limits<int32_t>::max() && P * rollouts <= std::numeric_limits<int32_t>::max(),
                    "params: P * rollouts must be < 2^31, got ", P, " * ", rollouts);

  // Optional noise: all four or none.
  const int n_noise = init_index.has_value() + init_eps.has_value() + noise_u.has_value() + noise_eps.has_value();
  TORCH_CHECK_VALUE(n_noise == 0 || n_noise == 4,
                    "init_index, init_eps, noise_u and noise_eps must be given together (got ", n_noise, " of 4)");
  s.injected = n_noise == 4;
  if (s.injected) {
    const int64_t R = rollouts, T = steps;
    check_tensor(*init_index, "init_index", at::kLong, 2, dev);
    check_tensor(*init_eps, "init_eps", f32, 3, dev);
    check_tensor(*noise_u, "noise_u", f32, 4, dev);
    check_tensor(*noise_eps, "noise_eps", f32, 4, dev);
    check_shape(*init_index, "init_index", {P, R}, "(P, R)");
    check_shape(*init_eps, "init_eps", {P, R, Z}, "(P, R, Z)");
    check_shape(*noise_u, "noise_u", {T, P, R, Z}, "(T, P, R, Z)");
    check_shape(*noise_eps, "noise_eps", {T, P, R, Z}, "(T, P, R, Z)");
    if (init_index->numel() > 0) {
      const bool in_range = ((*init_index >= 0) & (*init_index < N)).all().item<bool>();
      TORCH_CHECK_VALUE(in_range, "init_index values must be in [0, ", N, ") (rows of init_mu)");
    }
    check_finite(init_eps->contiguous(), "init_eps");
    check_finite(noise_u->contiguous(), "noise_u");
    check_finite(noise_eps->contiguous(), "noise_eps");
  }

  // Optional dropout masks: both or none.
  const int n_masks = mask_z.has_value() + mask_h.has_value();
  TORCH_CHECK_VALUE(n_masks == 0 || n_masks == 2, "mask_z and mask_h must be given together (got ", n_masks,
                    " of 2)");
  s.masks_injected = n_masks == 2;
  if (s.masks_injected) {
    check_tensor(*mask_z, "mask_z", f32, 3, dev);
    check_tensor(*mask_h, "mask_h", f32, 3, dev);
    check_shape(*mask_z, "mask_z", {P, rollouts, Z}, "(P, R, Z)");
    check_shape(*mask_h, "mask_h", {P, rollouts, H}, "(P, R, H)");
    check_finite(mask_z->contiguous(), "mask_z");
    check_finite(mask_h->contiguous(), "mask_h");
  }

  // Finiteness last (it reads every value).
  check_finite(w_ih.contiguous(), "w_ih");
  check_finite(w_hh.contiguous(), "w_hh");
  check_finite(b_ih.contiguous(), "b_ih");
  check_finite(b_hh.contiguous(), "b_hh");
  check_finite(head_w.contiguous(), "head_w");
  check_finite(head_b.contiguous(), "head_b");
  check_finite(params.contiguous(), "params");
  check_finite(init_mu.contiguous(), "init_mu");
  check_finite(init_logvar.contiguous(), "init_logvar");

  s.Z = Z;
  s.A = A;
  s.H = H;
  s.K = K;
  s.D = D;
  s.L = s.layout == kShared ? K : K * Z;
  s.P = P;
  s.R = rollouts;
  s.T = steps;
  s.N = N;
  s.n_in = n_in;
  s.n_out = n_out;
  s.crn = common_random_numbers;
  s.trajectories = return_trajectories;
  s.seed = static_cast<uint64_t>(seed);
  s.temperature = static_cast<float>(temperature);
  // done iff sigmoid(x) > thr  <=>  x > log(thr / (1 - thr))
  s.done_logit = static_cast<float>(std::log(done_threshold) - std::log1p(-done_threshold));
  s.dropout = static_cast<float>(dropout);
  s.dropout_scale = static_cast<float>(1.0 / (1.0 - dropout));
  return s;
}

DreamOutputs allocate_dream_outputs(const DreamSpec& s, const at::TensorOptions& o) {
  const auto f = o.dtype(at::kFloat);
  auto returns = at::zeros({s.P, s.R}, f);
  auto lengths = at::zeros({s.P, s.R}, o.dtype(at::kLong));
  if (!s.trajectories) {
    return {returns, lengths, at::empty({0}, f), at::empty({0}, f), at::empty({0}, f), at::empty({0}, f),
            at::empty({0}, o.dtype(at::kBool)), at::empty({0}, o.dtype(at::kBool))};
  }
  return {returns,
          lengths,
          at::empty({s.T, s.P, s.R, s.Z}, f),
          at::empty({s.T, s.P, s.R, s.H}, f),
          at::empty({s.T, s.P, s.R, s.A}, f),
          at::empty({s.T, s.P, s.R}, f),
          at::empty({s.T, s.P, s.R}, o.dtype(at::kBool)),
          at::empty({s.T, s.P, s.R}, o.dtype(at::kBool))};
}

}  // namespace wm_fast

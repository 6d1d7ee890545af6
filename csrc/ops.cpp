// Schema of the wm_fast ops (declared once) and the pybind11 module wm_fast._C.
#include <torch/extension.h>

#include "dream.h"

TORCH_LIBRARY(wm_fast, m) {
  m.def("controller_forward(Tensor params, Tensor x, int out_size) -> Tensor");
  m.def(
      "dream(Tensor w_ih, Tensor w_hh, Tensor b_ih, Tensor b_hh, Tensor head_w, Tensor head_b, Tensor params, "
      "Tensor init_mu, Tensor init_logvar, int steps, int rollouts, float temperature, int seed, "
      "str action_mapping, str controller_input, str reward_source, float done_threshold, str layout, "
      "bool common_random_numbers, Tensor? init_index, Tensor? init_eps, Tensor? noise_u, Tensor? noise_eps, "
      "bool return_trajectories, float dropout=0.0, Tensor? mask_z=None, Tensor? mask_h=None) -> (Tensor returns, "
      "Tensor lengths, Tensor z, Tensor h, Tensor action, Tensor reward, Tensor done, Tensor alive)");
}

TORCH_LIBRARY_IMPL(wm_fast, CPU, m) {
  m.impl("controller_forward", &wm_fast::controller_forward_cpu);
  m.impl("dream", &wm_fast::dream_cpu);
}

#if defined(WM_WITH_CUDA)
TORCH_LIBRARY_IMPL(wm_fast, CUDA, m) { m.impl("dream", &wm_fast::dream_cuda); }
#endif

namespace {

namespace py = pybind11;

template <typename Fn>
void def_dream(py::module_& m, const char* name, Fn fn, const char* doc) {
  m.def(name, fn, doc, py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("head_w"),
        py::arg("head_b"), py::arg("params"), py::arg("init_mu"), py::arg("init_logvar"), py::arg("steps"),
        py::arg("rollouts"), py::arg("temperature") = 1.0, py::arg("seed") = 0,
        py::arg("action_mapping") = "carracing", py::arg("controller_input") = "zh",
        py::arg("reward_source") = "model", py::arg("done_threshold") = 0.5, py::arg("layout") = "per_dim",
        py::arg("common_random_numbers") = false, py::arg("init_index") = py::none(),
        py::arg("init_eps") = py::none(), py::arg("noise_u") = py::none(), py::arg("noise_eps") = py::none(),
        py::arg("return_trajectories") = false, py::arg("dropout") = 0.0, py::arg("mask_z") = py::none(),
        py::arg("mask_h") = py::none(), py::call_guard<py::gil_scoped_release>());
}

// pybind11 entry points take std::string (the op's c10::string_view does not cast from Python).
#define WM_DREAM_PY_ARGS                                                                                      \
  const at::Tensor &w_ih, const at::Tensor &w_hh, const at::Tensor &b_ih, const at::Tensor &b_hh,             \
      const at::Tensor &head_w, const at::Tensor &head_b, const at::Tensor &params, const at::Tensor &init_mu, \
      const at::Tensor &init_logvar, int64_t steps, int64_t rollouts, double temperature, int64_t seed,       \
      const std::string &action_mapping, const std::string &controller_input, const std::string &reward_source, \
      double done_threshold, const std::string &layout, bool common_random_numbers,                           \
      const std::optional<at::Tensor>&init_index, const std::optional<at::Tensor>&init_eps,                   \
      const std::optional<at::Tensor>&noise_u, const std::optional<at::Tensor>&noise_eps,                     \
      bool return_trajectories, double dropout, const std::optional<at::Tensor>&mask_z,                       \
      const std::optional<at::Tensor>&mask_h

wm_fast::DreamOutputs dream_cpu_py(WM_DREAM_PY_ARGS) { return wm_fast::dream_cpu(WM_DREAM_ARG_NAMES); }
#if defined(WM_WITH_CUDA)
wm_fast::DreamOutputs dream_cuda_py(WM_DREAM_PY_ARGS) { return wm_fast::dream_cuda(WM_DREAM_ARG_NAMES); }
#endif
#if defined(WM_WITH_CUDA_EMULATOR)
wm_fast::DreamOutputs dream_emu_py(WM_DREAM_PY_ARGS, int64_t tile) {
  return wm_fast::dream_cuda_emulated(WM_DREAM_ARG_NAMES, tile);
}
#endif

}  // namespace

PYBIND11_MODULE(_C, m) {
  namespace py = pybind11;
  m.doc() = "wm_fast compiled engine";
  // Argument errors become Python ValueError / RuntimeError with the message only.
  pybind11::register_exception_translator([](std::exception_ptr ptr) {
    try {
      if (ptr) std::rethrow_exception(ptr);
    } catch (const c10::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  m.def("controller_forward", &wm_fast::controller_forward_cpu, "Raw outputs of P linear controllers",
        pybind11::arg("params"), pybind11::arg("x"), pybind11::arg("out_size"));
  def_dream(m, "dream_cpu", &dream_cpu_py,
            "Dream P candidates x R rollouts on the CPU (the op wm_fast::dream's CPU kernel). Returns "
            "(returns, lengths, z, h, action, reward, done, alive); trajectories are empty unless asked.");
#if defined(WM_WITH_CUDA)
  def_dream(m, "dream_cuda", &dream_cuda_py, "The same on the current CUDA device and stream.");
#endif
#if defined(WM_WITH_CUDA_EMULATOR)
  m.def("_dream_cuda_emulated", &dream_emu_py, "The CUDA kernel run on CPU threads (development check)",
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("head_w"), py::arg("head_b"),
        py::arg("params"), py::arg("init_mu"), py::arg("init_logvar"), py::arg("steps"), py::arg("rollouts"),
        py::arg("temperature"), py::arg("seed"), py::arg("action_mapping"), py::arg("controller_input"),
        py::arg("reward_source"), py::arg("done_threshold"), py::arg("layout"), py::arg("common_random_numbers"),
        py::arg("init_index"), py::arg("init_eps"), py::arg("noise_u"), py::arg("noise_eps"),
        py::arg("return_trajectories"), py::arg("dropout") = 0.0, py::arg("mask_z") = py::none(),
        py::arg("mask_h") = py::none(), py::arg("tile") = 0, py::call_guard<py::gil_scoped_release>());
#endif
  m.def("philox_dream_noise", &wm_fast::philox_dream_noise,
        "The engine's noise for a dream as tensors (init_index, init_eps, u, eps), see DreamNoise",
        py::arg("seed"), py::arg("P"), py::arg("R"), py::arg("T"), py::arg("Z"), py::arg("N"),
        py::arg("common_random_numbers") = false);
  m.def("philox_dream_masks", &wm_fast::philox_dream_masks,
        "The engine's dropout masks for a dream as tensors (mask_z, mask_h), see DreamNoise", py::arg("seed"),
        py::arg("P"), py::arg("R"), py::arg("Z"), py::arg("H"), py::arg("dropout"),
        py::arg("common_random_numbers") = false);
  m.def("philox4x32_10", &wm_fast::philox4x32_10_words, "One Philox4x32-10 block", py::arg("ctr"),
        py::arg("key"));
  m.def("cpu_isas", &wm_fast::cpu_isas, "CPU kernel variants compiled in and supported by this CPU");
  m.def("cpu_isa", &wm_fast::cpu_isa, "CPU kernel variant in use");
  m.def("set_cpu_isa", &wm_fast::set_cpu_isa, "Use another CPU kernel variant (tests, benchmarks)",
        pybind11::arg("name"));
}

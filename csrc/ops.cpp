// Schema of the wm_fast ops (declared once) and the pybind11 module wm_fast._C.
#include <torch/extension.h>

#include "dream.h"

TORCH_LIBRARY(wm_fast, m) {
  m.def("controller_forward(Tensor params, Tensor x, int out_size) -> Tensor");
}

TORCH_LIBRARY_IMPL(wm_fast, CPU, m) { m.impl("controller_forward", &wm_fast::controller_forward_cpu); }

PYBIND11_MODULE(_C, m) {
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
}

# CUDA backend setup, included from CMakeLists.txt before find_package(Torch) when torch was
# built with CUDA and WM_FAST_CUDA is not OFF. Sets WM_BUILD_CUDA and defines
# wm_configure_cuda_target(<target>).
#
# Fixes for toolkits laid out like this machine's (see ../shared/TOOLCHAIN.md):
#  1. `nvcc` on PATH may be a wrapper script: resolve it to the real compiler and take the
#     toolkit root from there (torch's FindCUDA would guess the root wrong).
#  2. The toolkit may lack nvrtc / cublas / cusparse / ... headers and libraries; the CUDA torch
#     wheel ships them under site-packages/nvidia/cu<major>/{include,lib}: point FindCUDAToolkit's
#     cache variables at them and add the include folder.
#  3. TORCH_CUDA_ARCH_LIST defaults to "8.0;9.0" (CUDA 13 dropped sm_50, torch's fallback).
#  4. CMake versions that do not know nvcc's C++20 flag get it spelled out.

set(WM_BUILD_CUDA OFF)

find_program(WM_NVCC nvcc HINTS "$ENV{CUDA_HOME}/bin" "$ENV{CUDA_PATH}/bin" /usr/local/cuda/bin)
if(NOT WM_NVCC)
  message(STATUS "wm_fast: nvcc not found, the CUDA backend is not built")
  function(wm_configure_cuda_target target)
  endfunction()
  return()
endif()

# 1. wrapper script -> real nvcc -> toolkit root
get_filename_component(WM_NVCC_REAL "${WM_NVCC}" REALPATH)
file(READ "${WM_NVCC_REAL}" _wm_nvcc_head LIMIT 1024)
if(_wm_nvcc_head MATCHES "^#!" AND _wm_nvcc_head MATCHES "exec[ \t]+\"?([^ \t\"\r\n]+/nvcc)")
  get_filename_component(WM_NVCC_REAL "${CMAKE_MATCH_1}" REALPATH)
endif()
get_filename_component(WM_CUDA_ROOT "${WM_NVCC_REAL}" DIRECTORY)
get_filename_component(WM_CUDA_ROOT "${WM_CUDA_ROOT}" DIRECTORY)
set(CMAKE_CUDA_COMPILER "${WM_NVCC_REAL}" CACHE FILEPATH "CUDA compiler" FORCE)
set(CUDA_TOOLKIT_ROOT_DIR "${WM_CUDA_ROOT}" CACHE PATH "CUDA toolkit root" FORCE)
set(CUDAToolkit_ROOT "${WM_CUDA_ROOT}")
set(CUDA_NVCC_EXECUTABLE "${WM_NVCC_REAL}" CACHE FILEPATH "nvcc" FORCE)
message(STATUS "wm_fast: nvcc ${WM_NVCC_REAL} (toolkit ${WM_CUDA_ROOT})")

# 2. libraries and headers from the torch wheel's nvidia/cu* folder when the toolkit lacks them
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
    "import glob, os, nvidia; print(';'.join(sorted(d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, 'cu[0-9]*')))))"
  OUTPUT_VARIABLE WM_NVIDIA_WHEEL_DIRS OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
set(WM_CUDA_EXTRA_INCLUDES)
foreach(dir IN LISTS WM_NVIDIA_WHEEL_DIRS)
  if(EXISTS "${dir}/include/cublas_v2.h" AND NOT EXISTS "${WM_CUDA_ROOT}/include/cublas_v2.h")
    list(APPEND WM_CUDA_EXTRA_INCLUDES "${dir}/include")
  endif()
  foreach(lib nvrtc cublas cublasLt cusparse cufft curand cusolver nvJitLink cupti)
    if(NOT CUDA_${lib}_LIBRARY AND NOT EXISTS "${WM_CUDA_ROOT}/lib64/lib${lib}.so")
      file(GLOB _wm_libs "${dir}/lib/lib${lib}.so*")
      list(FILTER _wm_libs EXCLUDE REGEX "(alt|builtins)")
      if(_wm_libs)
        list(GET _wm_libs 0 _wm_lib)
        set(CUDA_${lib}_LIBRARY "${_wm_lib}" CACHE FILEPATH "" FORCE)
      endif()
    endif()
  endforeach()
endforeach()
if(WM_CUDA_EXTRA_INCLUDES)
  message(STATUS "wm_fast: CUDA library headers from ${WM_CUDA_EXTRA_INCLUDES}")
  # FindCUDAToolkit's targets (CUDA::cublas, ...) and our sources both need them.
  include_directories(AFTER SYSTEM ${WM_CUDA_EXTRA_INCLUDES})
  list(APPEND CMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES ${WM_CUDA_EXTRA_INCLUDES})
endif()

# 3. architectures
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "${TORCH_CUDA_ARCH_LIST}")
endif()

# 4. nvcc's C++20 flag for CMake versions that lack it
if(CMAKE_VERSION VERSION_LESS 3.29)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()

set(WM_BUILD_CUDA ON)

function(wm_configure_cuda_target target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 --expt-relaxed-constexpr>)
  if(WM_CUDA_EXTRA_INCLUDES)
    target_include_directories(${target} SYSTEM PRIVATE ${WM_CUDA_EXTRA_INCLUDES})
  endif()
endfunction()

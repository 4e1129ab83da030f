# The CUDA processor (src/proc/cuda): CUDA C++ kernels behind an extern "C" boundary.
# The engine links the CUDA runtime statically and cuBLAS dynamically, and never links libcuda:
# the driver's entry points are looked up at run time, so binaries start (and fall back to the
# CPU) on machines without an NVIDIA driver.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
file(GLOB HLLM_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/proc/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/proc/cuda/*.c)
if(HLLM_CUDA_SOURCES)
  add_library(hllm_cuda_obj OBJECT ${HLLM_CUDA_SOURCES})
  target_include_directories(hllm_cuda_obj PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
  set_target_properties(hllm_cuda_obj PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
  # Replace the directory's C flags (warnings, sanitizers) with their nvcc spelling.
  set_property(TARGET hllm_cuda_obj PROPERTY COMPILE_OPTIONS
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
    $<$<COMPILE_LANGUAGE:CUDA>:-Wno-deprecated-gpu-targets>)
  target_compile_definitions(hllm_cuda_obj PRIVATE _GNU_SOURCE HLLM_HAVE_CUDA=1)
  set(HLLM_EXTRA_OBJECTS $<TARGET_OBJECTS:hllm_cuda_obj>)
  list(APPEND HLLM_LINK_LIBS CUDA::cudart_static CUDA::cublas)
  target_compile_definitions(hllm_obj PRIVATE HLLM_HAVE_CUDA=1)
  # Targets defined after this point (libraries, CLI, tests) see the CUDA processor's declarations.
  add_compile_definitions(HLLM_HAVE_CUDA=1)
  set(HLLM_PROCESSORS "cpu cuda")
endif()

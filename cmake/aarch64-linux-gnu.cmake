# Cross build for aarch64 Linux with Debian's gcc-aarch64-linux-gnu, tests run under qemu-user:
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DHLLM_CUDA=off
# HLLM_ARM_CPU picks the CPU qemu emulates (default "max": every extension qemu knows, dotprod
# and fp16 included); what the code may use is set by -march in CMAKE_C_FLAGS
# (default armv8-a, the baseline; e.g. -march=armv8.2-a+dotprod+fp16).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(HLLM_ARM_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${HLLM_ARM_TRIPLE}-gcc)
set(HLLM_ARM_SYSROOT /usr/${HLLM_ARM_TRIPLE} CACHE PATH "aarch64 libraries qemu loads (libc6-dev-arm64-cross)")
set(HLLM_ARM_CPU max CACHE STRING "CPU model qemu-aarch64 emulates")
set(CMAKE_FIND_ROOT_PATH ${HLLM_ARM_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;${HLLM_ARM_SYSROOT};-cpu;${HLLM_ARM_CPU})

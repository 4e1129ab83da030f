# Matmul microbenchmark (not a test): include(cmake/bench_matmul.cmake) from the top CMakeLists.
add_executable(bench_matmul ${CMAKE_SOURCE_DIR}/tools/bench_matmul.c)
target_link_libraries(bench_matmul PRIVATE hllm)

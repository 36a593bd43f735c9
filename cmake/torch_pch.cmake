# One precompiled header for <torch/torch.h>, built once and reused by every
# torch-using target (REUSE_FROM needs identical flags, which all targets in
# this project share). Parsing torch/torch.h costs ~15 s per translation unit
# on the reference 2-core machine; with the PCH it is paid once.
add_library(lfl_torch_pch STATIC ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cc)
target_link_libraries(lfl_torch_pch PUBLIC ${TORCH_LIBRARIES})
target_include_directories(lfl_torch_pch PUBLIC ${TORCH_INCLUDE_DIRS})
target_precompile_headers(lfl_torch_pch PRIVATE <torch/torch.h>)
# Every user compiles with -pthread; the PCH must see the same _REENTRANT.
target_compile_options(lfl_torch_pch PUBLIC -pthread)
target_link_libraries(lfl_torch_pch PUBLIC Threads::Threads)

# lfl_use_torch(target): link LibTorch and reuse the shared precompiled header.
# The PCH anchor is a build-tree detail: installed targets (cmake/lfl_install.cmake)
# link LibTorch itself and compile with -pthread like the PCH.
function(lfl_use_torch target)
  target_link_libraries(${target} PUBLIC $<BUILD_INTERFACE:lfl_torch_pch> ${TORCH_LIBRARIES} Threads::Threads)
  target_compile_options(${target} PUBLIC -pthread)
  target_precompile_headers(${target} REUSE_FROM lfl_torch_pch)
endfunction()

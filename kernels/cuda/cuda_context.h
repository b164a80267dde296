// kernels/cuda/cuda_context.h: a standalone CUDA KernelContext (its own stream, cuBLAS and cuBLASLt handles,
// workspace) for the kernel tests and benchmarks; the engine builds its own in engine::DeviceContext. Plain C++.
// In a --config=nocuda build both functions abort with a message.
#pragma once

#include <cstddef>

#include "kernels/context.h"

namespace kernels::cuda {

KernelContext make_cuda_context(size_t workspace_bytes = 64ull << 20);
void destroy_cuda_context(KernelContext& ctx);  // synchronises the stream first

}  // namespace kernels::cuda

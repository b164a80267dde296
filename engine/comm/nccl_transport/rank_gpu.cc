// engine/comm/nccl_transport/rank_gpu.cc: node-local rank, visible GPUs, and the selection of this rank's GPU.
#include "engine/comm/nccl_transport/rank_gpu.h"

#include <cstdlib>
#include <stdexcept>

#ifdef RESBM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace engine::comm {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

}  // namespace

int node_local_rank() {
  // OpenMPI, then MPICH/Intel MPI, then Slurm's srun.
  return env_int("OMPI_COMM_WORLD_LOCAL_RANK", env_int("MPI_LOCALRANKID", env_int("SLURM_LOCALID", 0)));
}

int visible_gpu_count(std::string* why) {
#ifdef RESBM_HAVE_CUDA
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    *why = std::string("no usable GPU: cudaGetDeviceCount returned ") + cudaGetErrorName(err) + " (" +
           cudaGetErrorString(err) + ")";
    return 0;
  }
  if (count == 0) *why = "no GPU: cudaGetDeviceCount found 0 devices";
  return count;
#else
  *why = "this binary was built without CUDA (--config=nocuda)";
  return 0;
#endif
}

RankGpu use_rank_gpu() {
  RankGpu gpu;
  std::string why;
  gpu.count = visible_gpu_count(&why);
  if (gpu.count == 0) throw std::runtime_error(why);
#ifdef RESBM_HAVE_CUDA
  gpu.index = node_local_rank() % gpu.count;
  cudaError_t err = cudaSetDevice(gpu.index);
  cudaDeviceProp prop;
  if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, gpu.index);
  if (err != cudaSuccess) {
    throw std::runtime_error("cannot use GPU " + std::to_string(gpu.index) + ": " + cudaGetErrorName(err) + " (" +
                             cudaGetErrorString(err) + ")");
  }
  gpu.name = prop.name;
#endif
  return gpu;
}

}  // namespace engine::comm

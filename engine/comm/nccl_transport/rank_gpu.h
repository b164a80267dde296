// engine/comm/nccl_transport/rank_gpu.h: the GPU a rank of an mpirun job trains on, chosen one way for every
// transport: its node-local rank modulo the GPUs visible to it. NcclTransport uses it (and refuses two ranks on one
// GPU); the MPI transport's GPU runs use it too and may share a GPU (S=2 stages on a one-GPU machine).
// Built with and without CUDA: under --config=nocuda no GPU is ever visible, and the reason says so.
#pragma once

#include <string>

namespace engine::comm {

// This process's rank among the job's ranks on its host (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or
// SLURM_LOCALID); 0 outside a job. Reads the environment only: safe before MPI_Init.
int node_local_rank();

// How many GPUs this process can use. 0 when none, and then *why says why, in the CUDA runtime's words, e.g.
// "no usable GPU: cudaGetDeviceCount returned cudaErrorNoDevice (no CUDA-capable device is detected)", or
// "this binary was built without CUDA (--config=nocuda)".
int visible_gpu_count(std::string* why);

struct RankGpu {
  int index = -1;    // the CUDA device this process uses
  int count = 0;     // GPUs visible to this process
  std::string name;  // the device's name, e.g. "NVIDIA H200"
};

// Makes GPU node_local_rank() % visible_gpu_count() this process's current device (cudaSetDevice): call it before
// creating any CUDA object. Throws std::runtime_error with one line saying why when no GPU is usable.
RankGpu use_rank_gpu();

}  // namespace engine::comm

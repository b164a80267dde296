// engine/comm/nccl_transport/stage_transport.h: the Transport of this process's stage in an mpirun job, chosen by
// name, so that the trainer needs no CUDA or NCCL code of its own:
//   "mpi"   MpiTransport: messages in host memory; the stages may run on the CPU or on GPUs, several ranks per GPU
//           allowed (a one-GPU machine can run S=2).
//   "nccl"  NcclTransport: one GPU per rank, its messages ordered after the work queued on ctx's CUDA stream.
#pragma once

#include <memory>
#include <string>

#include "engine/comm/replica_group.h"
#include "engine/comm/transport.h"
#include "kernels/context.h"

namespace engine::comm {

// ctx must outlive the transport (NCCL sends wait for its stream). Throws std::invalid_argument for an unknown
// kind, and for "nccl" in a build without CUDA. The transports' own refusals (world size != stages, two ranks on
// one GPU) print their message and end the process with status 3.
// With num_replicas > 1 (mpi only: R x S ranks, engine/comm/mpi_transport.h), *replicas receives the group of this
// stage's replicas; nccl refuses replicas (std::invalid_argument).
std::unique_ptr<Transport> open_stage_transport(const std::string& kind, int num_stages, double timeout_s,
                                                const kernels::KernelContext& ctx, int num_replicas = 1,
                                                std::unique_ptr<ReplicaGroup>* replicas = nullptr);

}  // namespace engine::comm

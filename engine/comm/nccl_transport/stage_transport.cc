// engine/comm/nccl_transport/stage_transport.cc: open_stage_transport, MpiTransport or (CUDA builds) NcclTransport.
#include "engine/comm/nccl_transport/stage_transport.h"

#include <stdexcept>

#include "engine/comm/mpi_transport.h"

#ifdef RESBM_HAVE_CUDA
#include "engine/comm/nccl_transport/nccl_transport.h"
#endif

namespace engine::comm {

std::unique_ptr<Transport> open_stage_transport(const std::string& kind, int num_stages, double timeout_s,
                                                const kernels::KernelContext& ctx, int num_replicas,
                                                std::unique_ptr<ReplicaGroup>* replicas) {
  if (kind == "mpi") {
    auto mpi = std::make_unique<MpiTransport>(num_stages, timeout_s, num_replicas);
    if (num_replicas > 1 && replicas != nullptr) *replicas = mpi->open_replica_group();
    return mpi;
  }
  if (kind != "nccl") throw std::invalid_argument("unknown transport '" + kind + "' (mpi or nccl)");
  if (num_replicas > 1) {
    throw std::invalid_argument("replicas of the pipeline sync over MPI; the nccl transport does not carry them yet: "
                                "use --transport mpi");
  }
#ifdef RESBM_HAVE_CUDA
  auto nccl = std::make_unique<NcclTransport>(num_stages, timeout_s);
  nccl->set_compute_stream(ctx);
  return nccl;
#else
  (void)ctx;
  throw std::invalid_argument("the nccl transport needs a CUDA build; this binary was built without CUDA "
                              "(--config=nocuda): use --transport mpi");
#endif
}

}  // namespace engine::comm

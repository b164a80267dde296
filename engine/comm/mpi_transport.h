// engine/comm/mpi_transport.h: MpiTransport, one process per pipeline stage (rank r runs stage r) over MPI; with R
// replicas of the pipeline, R x S ranks: rank w runs stage w % S of replica w / S, and the replicas of one stage
// form a ReplicaGroup (engine/comm/replica_group.h).
//
// Sends copy into a pooled buffer and post MPI_Isend, so a stage never blocks on its own send (1F1B has stages
// sending to each other at the same time). Receives post MPI_Irecv and poll MPI_Test until a deadline; past it
// the process prints "stage S (rank R): no message from stage P (rank Q) within N s: peer dead or stalled" to
// stderr and exits with status 3. The communicator uses MPI_ERRORS_RETURN, so a failure MPI reports (a broken
// connection to a dead peer) is also turned into a message naming the peer, not a silent abort.
#pragma once

#include <memory>
#include <vector>

#include "engine/comm/replica_group.h"
#include "engine/comm/transport.h"

namespace engine::comm {

// MPI_CHECK(call, "hint"): on failure prints file:line, MPI's error string and the hint, exits with status 3.
#define MPI_CHECK(call, hint) ::engine::comm::mpi_check((call), #call, (hint), __FILE__, __LINE__)
void mpi_check(int code, const char* call, const char* hint, const char* file, int line);

class MpiTransport : public Transport {
 public:
  // Calls MPI_Init if needed (MPI_Finalize in the destructor if it did). The world size must equal num_stages x
  // num_replicas (fatal otherwise, with a hint for mpirun -np); this process runs stage (world rank) % num_stages of
  // replica (world rank) / num_stages, and its messages go to the stages of its own replica only.
  MpiTransport(int num_stages, double timeout_s, int num_replicas = 1);
  ~MpiTransport() override;

  void allgather(const double* mine, int count, double* all) override;
  void send_raw(int peer, int tag, const void* data, size_t bytes) override;
  void recv_raw(int peer, int tag, void* data, size_t bytes) override;
  bool probe_raw(int peer, int tag) override;
  std::string stage_name(int stage) const override;

  double timeout_s() const { return timeout_s_; }
  int replica() const;
  // The group of this stage's replicas (a collective over the whole job: every rank calls it, once). Must be
  // destroyed before this transport (which may finalize MPI).
  std::unique_ptr<ReplicaGroup> open_replica_group();
  // Waits (bounded by the timeout) for every send still in flight: call before exiting.
  void flush();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  double timeout_s_;
};

// The rank and size mpirun gave this process (OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/SIZE), or -1 when not
// launched by mpirun. Reads the environment only: safe before MPI_Init.
int mpi_launch_rank();
int mpi_launch_size();

}  // namespace engine::comm

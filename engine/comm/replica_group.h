// engine/comm/replica_group.h: ReplicaGroup, the R processes that hold the same pipeline stage in R replicas of the
// pipeline: what the data-parallel sync between replicas (engine/pipeline/replicas.h) exchanges over.
//
// With mpirun (engine/comm/mpi_transport.h) rank w = replica * S + stage: the pipeline of replica r is ranks
// [r S, (r+1) S) (its MpiTransport), and the group of stage s is ranks s, S + s, 2S + s, ... (its ReplicaGroup).
// Each gathers in replica order, so every member gets the same values in the same order and can reduce them
// itself in a fixed order: the sum is then bitwise that of the single-process reference, which adds the replicas
// in replica order too (a ring all-reduce would add in another order on every member).
#pragma once

#include <cstddef>

namespace engine::comm {

class ReplicaGroup {
 public:
  virtual ~ReplicaGroup() = default;
  virtual int replica() const = 0;       // this process's replica, 0..R-1
  virtual int num_replicas() const = 0;  // R
  // all (R * count values) receives every replica's `count` values, replica order, on every replica. A member dead
  // or stalled past the timeout ends this process with a message naming it (exit status 3), as a boundary wait does.
  virtual void allgather(const float* mine, size_t count, float* all) = 0;
  virtual void allgather(const double* mine, size_t count, double* all) = 0;
};

}  // namespace engine::comm

// engine/comm/nccl_transport/nccl_transport.h: NcclTransport, one process per pipeline stage and per GPU, boundary
// messages over NCCL point-to-point (ncclSend/ncclRecv inside ncclGroupStart/End) on dedicated streams.
//
// Setup: MPI starts the processes (mpirun -np S, rank r runs stage r) and broadcasts rank 0's ncclUniqueId; each
// rank takes the GPU of its node-local rank. Refused with a clear message: a world size other than the number of
// stages, more ranks on a node than it has GPUs, and two ranks on the same GPU (NCCL cannot run two ranks on one
// device; compared by GPU UUID over MPI, so a CUDA_VISIBLE_DEVICES mistake is caught too).
//
// Two channels, each its own communicator and stream: traffic to higher ranks (forward) and to lower ranks
// (backward). On one stream, two neighbours that both send before they receive (1F1B's steady state) would wait on
// each other forever; per direction, all messages flow one way and cannot form a cycle.
// Ordering with compute, by events, never by device-wide syncs:
//   send: the payload is copied into a pooled device buffer on the compute stream (so the caller may reuse its
//         buffer at once, as Transport promises); the channel stream waits for that copy's event, then sends.
//   recv: posted on the channel stream; the compute stream waits for its completion event, and the host polls the
//         event against the deadline (a dead or stalled peer ends the process with a message naming it).
// Payloads may live in device or host memory (host payloads are staged through a device buffer).
// Every connection (neighbours, and the first and the last stage for the tied weight) is set up by the constructor, in
// the same order on every rank: NCCL blocks the host in a connection's set-up until the peer sets up the same one,
// which, left to the first messages, would deadlock the tied-gradient exchange at S >= 3.
// No device-wide waits once NCCL work may be in flight: the send pool and the receive staging grow by stream-ordered
// allocation (cudaMallocAsync/cudaFreeAsync), because cudaMalloc/cudaFree may wait for a send that waits for a peer
// that waits in the same way (both ends of the tied-gradient exchange grow their buffers on the first step).
// NCCL matches messages between two ranks in issue order and has no tags: each message carries a small header
// (tag, bytes) in the same group, checked on arrival, so a schedule that receives out of order fails loudly
// instead of mixing up micro-batches.
// The small collectives (allgather of doubles) go over MPI.
#pragma once

#include <memory>
#include <string>

#include "engine/comm/transport.h"
#include "kernels/context.h"

namespace engine::comm {

class NcclTransport : public Transport {
 public:
  // Calls MPI_Init if needed (MPI_Finalize in the destructor if it did), selects this rank's GPU as use_rank_gpu
  // (rank_gpu.h) does (cudaSetDevice: construct it before any other CUDA object of the process, or after
  // use_rank_gpu, which chose the same GPU), creates the communicators.
  NcclTransport(int num_stages, double timeout_s);
  ~NcclTransport() override;

  // The compute stream that sends wait for and receives signal (ctx.cuda_stream; null = the legacy stream).
  void set_compute_stream(const kernels::KernelContext& ctx);

  // Payloads in device memory go to and from NCCL directly (host ones are staged through device buffers).
  bool carries_device_memory() const override { return true; }
  void allgather(const double* mine, int count, double* all) override;
  void send_raw(int peer, int tag, const void* data, size_t bytes) override;
  void recv_raw(int peer, int tag, void* data, size_t bytes) override;
  // NCCL cannot look for a message without receiving it: returns true (a recv then waits, bounded by the timeout).
  // Only the single-process executor polls, and it never uses this transport.
  bool probe_raw(int peer, int tag) override;
  std::string stage_name(int stage) const override;

  int device() const;  // the CUDA device this rank uses
  // Waits (bounded by the timeout) for every send still in flight: call before exiting.
  void flush();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace engine::comm

// engine/comm/nccl_transport/nccl_transport.cc: NcclTransport (see the header): MPI bootstrap and GPU checks,
// pooled sends and header-checked receives on a dedicated NCCL stream, bounded waits that name the peer.
#include "engine/comm/nccl_transport/nccl_transport.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "engine/comm/mpi_transport.h"  // MPI_CHECK, mpi_launch_rank
#include "engine/comm/nccl_transport/rank_gpu.h"

namespace engine::comm {

namespace {

// Fatal communication error: print and leave with status 3 without waiting for anyone (as MpiTransport does), so
// mpirun stops the other ranks, which are bounded by their own deadlines.
[[noreturn]] void nccl_fatal(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(3);
}

#define NCCL_CHECK(call, hint)                                                                                  \
  do {                                                                                                          \
    ncclResult_t nccl_rc_ = (call);                                                                             \
    if (nccl_rc_ != ncclSuccess) {                                                                              \
      nccl_fatal(std::string("resbm fatal at ") + __FILE__ + ":" + std::to_string(__LINE__) + ": " + #call +    \
                 " failed: " + ncclGetErrorString(nccl_rc_) + " (" + ncclGetLastError(nullptr) + "; " + (hint) + \
                 "; NCCL_DEBUG=WARN prints more)");                                                             \
    }                                                                                                           \
  } while (0)

#define COMM_CUDA_CHECK(call)                                                                                 \
  do {                                                                                                        \
    cudaError_t cuda_rc_ = (call);                                                                            \
    if (cuda_rc_ != cudaSuccess) {                                                                            \
      nccl_fatal(std::string("resbm fatal at ") + __FILE__ + ":" + std::to_string(__LINE__) + ": " + #call +  \
                 " failed: " + cudaGetErrorString(cuda_rc_) + " (is a GPU visible to this rank?)");           \
    }                                                                                                         \
  } while (0)

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The header that travels with every message: NCCL has no tags and needs equal sizes on both sides.
struct Header {
  int64_t tag;
  int64_t bytes;
};

// Sends in flight at once, at most (each holds a pooled slot): every micro-batch of a step plus a few more.
constexpr size_t kMaxSendSlots = kMaxMicroBatches + 64;

}  // namespace

// One channel per direction of travel (lower rank -> higher rank, and back), each with its own communicator and
// stream. A single stream would deadlock 1F1B: two neighbours that both queue a send to each other before their
// receives would each wait for the other's receive, queued behind its own send. Within a channel all traffic flows
// one way, so the waits cannot form a cycle.
struct Channel {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;   // NCCL work of this channel only
  Header* recv_header = nullptr;   // device
  Header* recv_header_host = nullptr;  // pinned
  void* recv_staging = nullptr;    // device, for host-memory receives
  size_t recv_staging_bytes = 0;
  cudaEvent_t received = nullptr;
};

struct NcclTransport::Impl {
  struct Slot {  // a pooled device buffer and the event that says its last send finished
    void* buffer = nullptr;
    size_t capacity = 0;
    cudaEvent_t done = nullptr;
    Header* header_host = nullptr;  // in headers_host: copied asynchronously, rewritten once the slot is free again
    bool busy = false;
  };
  int rank = 0, size = 0, device = 0;
  bool initialized_mpi_here = false;
  double timeout_s = 60.0;
  MPI_Comm mpi = MPI_COMM_NULL;
  Channel up, down;                       // up: to higher ranks (forward); down: to lower ranks (backward)
  cudaStream_t compute_stream = nullptr;  // the engine's stream (set_compute_stream)
  std::deque<Slot> send_slots;
  Header* headers_host = nullptr;  // pinned, kMaxSendSlots of them, allocated up front: slot i uses headers_host[i]
  cudaEvent_t ready = nullptr;
  Header* connect_buffers = nullptr;  // device, 3 headers: what connect_all sends and receives
  // The channel of a message between this rank and `peer`, by which of the two sends.
  Channel& channel(int sender, int receiver) { return sender < receiver ? up : down; }
  void connect_all(const std::string& me);
  void wait_received(Channel& ch, const std::string& me, const std::string& from);
};

// NCCL sets a connection up on its first use, and the set-up blocks the host until the peer sets up the same
// connection. Left to the first real messages, the tied-gradient exchange at S >= 3 would deadlock: stage 0 waiting
// in the up channel's set-up (its send to the last stage) while the last stage waits in the down channel's (its send
// to stage 0). So every pair that will ever talk is connected here, one group per channel, in the same order on every
// rank: neighbours, and the first and the last stage (the tied weight).
void NcclTransport::Impl::connect_all(const std::string& me) {
  const int last = size - 1;
  for (Channel* ch : {&up, &down}) {
    const int next = ch == &up ? 1 : -1;  // where this channel's messages go
    std::vector<int> to, from;
    if (rank + next >= 0 && rank + next <= last) to.push_back(rank + next);
    if (rank - next >= 0 && rank - next <= last) from.push_back(rank - next);
    if (last >= 2) {  // the first and the last stage are not neighbours: a connection of their own
      const int tied_sender = ch == &up ? 0 : last, tied_receiver = ch == &up ? last : 0;
      if (rank == tied_sender) to.push_back(tied_receiver);
      if (rank == tied_receiver) from.push_back(tied_sender);
    }
    NCCL_CHECK(ncclGroupStart(), "group start");
    for (int peer : to) {
      NCCL_CHECK(ncclSend(connect_buffers, sizeof(Header), ncclUint8, peer, ch->comm, ch->stream), "connecting");
    }
    for (size_t i = 0; i < from.size(); i++) {
      NCCL_CHECK(ncclRecv(connect_buffers + 1 + i, sizeof(Header), ncclUint8, from[i], ch->comm, ch->stream),
                 "connecting");
    }
    NCCL_CHECK(ncclGroupEnd(), "group end");
    COMM_CUDA_CHECK(cudaEventRecord(ch->received, ch->stream));
    wait_received(*ch, me, "its peers (connecting NCCL)");
  }
}

// Bounded wait for ch.received: polls the event, and NCCL's own asynchronous error state, until the deadline.
// `from` names whom the receive waits for.
void NcclTransport::Impl::wait_received(Channel& ch, const std::string& me, const std::string& from) {
  const double deadline = now_s() + timeout_s;
  for (int i = 0;; i++) {
    const cudaError_t q = cudaEventQuery(ch.received);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) COMM_CUDA_CHECK(q);
    ncclResult_t async_error = ncclSuccess;
    NCCL_CHECK(ncclCommGetAsyncError(ch.comm, &async_error), "querying NCCL's state");
    if (async_error != ncclSuccess) {
      ncclCommAbort(ch.comm);
      nccl_fatal(me + ": NCCL failed while receiving from " + from + ": " + ncclGetErrorString(async_error) +
                 ": peer dead?");
    }
    if (now_s() > deadline) {
      ncclCommAbort(ch.comm);
      nccl_fatal(me + ": no message from " + from + " within " + std::to_string(static_cast<int>(timeout_s)) +
                 " s: peer dead or stalled");
    }
    if (i < 200) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
}

NcclTransport::NcclTransport(int num_stages, double timeout_s)
    : Transport(mpi_launch_rank() >= 0 ? mpi_launch_rank() : 0, num_stages), impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.timeout_s = timeout_s;
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized), "is the MPI library usable?");
  if (!initialized) {
    MPI_CHECK(MPI_Init(nullptr, nullptr), "start the stages with mpirun -np <stages>");
    s.initialized_mpi_here = true;
  }
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &s.mpi), "duplicating MPI_COMM_WORLD");
  MPI_CHECK(MPI_Comm_set_errhandler(s.mpi, MPI_ERRORS_RETURN), "setting MPI_ERRORS_RETURN");
  MPI_CHECK(MPI_Comm_rank(s.mpi, &s.rank), "MPI_Comm_rank");
  MPI_CHECK(MPI_Comm_size(s.mpi, &s.size), "MPI_Comm_size");
  if (s.size != num_stages || s.rank != stage()) {
    nccl_fatal("NcclTransport: " + std::to_string(num_stages) + " stages need exactly " + std::to_string(num_stages) +
               " MPI ranks, one per stage and per GPU; this job has " + std::to_string(s.size) +
               " (launch with mpirun -np " + std::to_string(num_stages) + ")");
  }

  // One GPU per rank: the node-local rank picks the device (as use_rank_gpu does). With more ranks than GPUs two
  // ranks land on one GPU, which the UUID check below reports in plain words (rather than NCCL's own failure later).
  const int local_rank = node_local_rank();
  int num_devices = 0;
  COMM_CUDA_CHECK(cudaGetDeviceCount(&num_devices));
  if (num_devices == 0) nccl_fatal(stage_name(stage()) + ": no CUDA device visible: NcclTransport needs one GPU per rank");
  s.device = local_rank % num_devices;
  COMM_CUDA_CHECK(cudaSetDevice(s.device));

  // Two ranks on one GPU (NCCL refuses it with an obscure "duplicate GPU" error): compare UUIDs across ranks.
  cudaDeviceProp prop;
  COMM_CUDA_CHECK(cudaGetDeviceProperties(&prop, s.device));
  char host[64] = {0};
  gethostname(host, sizeof(host) - 1);
  std::vector<char> uuids(static_cast<size_t>(s.size) * 16), hosts(static_cast<size_t>(s.size) * 64);
  MPI_CHECK(MPI_Allgather(prop.uuid.bytes, 16, MPI_BYTE, uuids.data(), 16, MPI_BYTE, s.mpi), "gathering GPU UUIDs");
  MPI_CHECK(MPI_Allgather(host, 64, MPI_CHAR, hosts.data(), 64, MPI_CHAR, s.mpi), "gathering host names");
  for (int a = 0; a < s.size; a++) {
    for (int b = a + 1; b < s.size; b++) {
      if (std::memcmp(&uuids[a * 16], &uuids[b * 16], 16) == 0) {
        nccl_fatal(stage_name(stage()) + ": ranks " + std::to_string(a) + " and " + std::to_string(b) +
                   " share one GPU (host " + std::string(&hosts[a * 64]) +
                   "); NCCL cannot run two ranks on one device: give each stage its own GPU "
                   "(check CUDA_VISIBLE_DEVICES), or use --transport mpi on a single-GPU machine");
      }
    }
  }

  ncclUniqueId ids[2];
  if (s.rank == 0) {
    NCCL_CHECK(ncclGetUniqueId(&ids[0]), "creating the NCCL id on rank 0");
    NCCL_CHECK(ncclGetUniqueId(&ids[1]), "creating the NCCL id on rank 0");
  }
  MPI_CHECK(MPI_Bcast(ids, sizeof(ids), MPI_BYTE, 0, s.mpi), "broadcasting the ncclUniqueIds");
  int which = 0;
  for (Channel* ch : {&s.up, &s.down}) {
    NCCL_CHECK(ncclCommInitRank(&ch->comm, s.size, ids[which++], s.rank), "creating an NCCL communicator");
    COMM_CUDA_CHECK(cudaStreamCreateWithFlags(&ch->stream, cudaStreamNonBlocking));
    COMM_CUDA_CHECK(cudaMalloc(&ch->recv_header, sizeof(Header)));
    COMM_CUDA_CHECK(cudaMallocHost(&ch->recv_header_host, sizeof(Header)));
    COMM_CUDA_CHECK(cudaEventCreateWithFlags(&ch->received, cudaEventDisableTiming));
  }
  COMM_CUDA_CHECK(cudaEventCreateWithFlags(&s.ready, cudaEventDisableTiming));
  COMM_CUDA_CHECK(cudaMallocHost(&s.headers_host, kMaxSendSlots * sizeof(Header)));
  COMM_CUDA_CHECK(cudaMalloc(&s.connect_buffers, 3 * sizeof(Header)));
  s.connect_all(stage_name(stage()));
}

NcclTransport::~NcclTransport() {
  Impl& s = *impl_;
  flush();
  for (auto& slot : s.send_slots) {
    cudaFree(slot.buffer);  // nothing is in flight any more (flush): a device-wide wait is harmless now
    cudaEventDestroy(slot.done);
  }
  cudaFreeHost(s.headers_host);
  cudaFree(s.connect_buffers);
  for (Channel* ch : {&s.up, &s.down}) {
    cudaFree(ch->recv_header);
    cudaFreeHost(ch->recv_header_host);
    cudaFree(ch->recv_staging);
    cudaEventDestroy(ch->received);
    ncclCommDestroy(ch->comm);
    cudaStreamDestroy(ch->stream);
  }
  cudaEventDestroy(s.ready);
  MPI_Comm_free(&s.mpi);
  if (s.initialized_mpi_here) MPI_Finalize();
}

void NcclTransport::set_compute_stream(const kernels::KernelContext& ctx) {
  impl_->compute_stream = static_cast<cudaStream_t>(ctx.cuda_stream);
}

int NcclTransport::device() const { return impl_->device; }

std::string NcclTransport::stage_name(int stage) const {
  return "stage " + std::to_string(stage) + " (rank " + std::to_string(stage) + ")";
}

bool NcclTransport::probe_raw(int /*peer*/, int /*tag*/) { return true; }

void NcclTransport::allgather(const double* mine, int count, double* all) {
  MPI_CHECK(MPI_Allgather(mine, count, MPI_DOUBLE, all, count, MPI_DOUBLE, impl_->mpi),
            "allgather over MPI (a peer died?)");
}

void NcclTransport::send_raw(int peer, int tag, const void* data, size_t bytes) {
  Impl& s = *impl_;
  // A free slot (its previous send finished) big enough, else a new one: the pool stops growing after warm-up.
  Impl::Slot* slot = nullptr;
  for (auto& candidate : s.send_slots) {
    if (candidate.busy && cudaEventQuery(candidate.done) == cudaSuccess) candidate.busy = false;
    if (!candidate.busy && candidate.capacity >= bytes + sizeof(Header) && slot == nullptr) slot = &candidate;
  }
  if (slot == nullptr) {
    if (s.send_slots.size() == kMaxSendSlots) {
      nccl_fatal(stage_name(stage()) + ": more than " + std::to_string(kMaxSendSlots) +
                 " sends in flight: the peers stopped receiving");
    }
    s.send_slots.emplace_back();
    slot = &s.send_slots.back();
    slot->capacity = bytes + sizeof(Header);
    slot->header_host = &s.headers_host[s.send_slots.size() - 1];
    // Stream-ordered allocation, never cudaMalloc/cudaFree (nor cudaMallocHost) once NCCL work may be in flight:
    // those may wait for the whole device, and so for one of our sends that waits for a peer, which may itself be
    // waiting in its own allocation for its send to us (the tied-gradient exchange grows both sides' buffers at
    // once on the first step): a deadlock no timeout could end.
    COMM_CUDA_CHECK(cudaMallocAsync(&slot->buffer, slot->capacity, s.compute_stream));
    COMM_CUDA_CHECK(cudaEventCreateWithFlags(&slot->done, cudaEventDisableTiming));
  }
  // [header | payload] in the slot, written on the compute stream after the work that produced the payload.
  // A device payload is copied device-to-device in stream order, so the caller may overwrite it with later work; a
  // pageable host payload is consumed before cudaMemcpyAsync returns. Either way the caller's buffer is free.
  *slot->header_host = Header{tag, static_cast<int64_t>(bytes)};
  char* buf = static_cast<char*>(slot->buffer);
  COMM_CUDA_CHECK(cudaMemcpyAsync(buf, slot->header_host, sizeof(Header), cudaMemcpyHostToDevice, s.compute_stream));
  if (bytes > 0) {
    COMM_CUDA_CHECK(cudaMemcpyAsync(buf + sizeof(Header), data, bytes, cudaMemcpyDefault, s.compute_stream));
  }
  Channel& ch = s.channel(s.rank, peer);
  COMM_CUDA_CHECK(cudaEventRecord(s.ready, s.compute_stream));
  COMM_CUDA_CHECK(cudaStreamWaitEvent(ch.stream, s.ready, 0));
  NCCL_CHECK(ncclGroupStart(), "group start");
  NCCL_CHECK(ncclSend(buf, sizeof(Header), ncclUint8, peer, ch.comm, ch.stream), "sending a header");
  if (bytes > 0) NCCL_CHECK(ncclSend(buf + sizeof(Header), bytes, ncclUint8, peer, ch.comm, ch.stream), "sending");
  NCCL_CHECK(ncclGroupEnd(), "group end");
  COMM_CUDA_CHECK(cudaEventRecord(slot->done, ch.stream));
  slot->busy = true;
}

void NcclTransport::recv_raw(int peer, int tag, void* data, size_t bytes) {
  Impl& s = *impl_;
  Channel& ch = s.channel(peer, s.rank);
  cudaPointerAttributes attr;
  COMM_CUDA_CHECK(cudaPointerGetAttributes(&attr, data));
  const bool on_device = attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
  void* target = data;
  if (!on_device) {
    if (ch.recv_staging_bytes < bytes) {
      // Stream-ordered on the channel's stream, after the receives that used the old buffer (see send_raw: no
      // cudaMalloc/cudaFree while NCCL work may be in flight).
      if (ch.recv_staging != nullptr) COMM_CUDA_CHECK(cudaFreeAsync(ch.recv_staging, ch.stream));
      COMM_CUDA_CHECK(cudaMallocAsync(&ch.recv_staging, bytes, ch.stream));
      ch.recv_staging_bytes = bytes;
    }
    target = ch.recv_staging;
  }
  // The destination may still be read by queued compute work: the receive waits for the compute stream.
  COMM_CUDA_CHECK(cudaEventRecord(s.ready, s.compute_stream));
  COMM_CUDA_CHECK(cudaStreamWaitEvent(ch.stream, s.ready, 0));
  NCCL_CHECK(ncclGroupStart(), "group start");
  NCCL_CHECK(ncclRecv(ch.recv_header, sizeof(Header), ncclUint8, peer, ch.comm, ch.stream), "receiving a header");
  if (bytes > 0) NCCL_CHECK(ncclRecv(target, bytes, ncclUint8, peer, ch.comm, ch.stream), "receiving");
  NCCL_CHECK(ncclGroupEnd(), "group end");
  COMM_CUDA_CHECK(
      cudaMemcpyAsync(ch.recv_header_host, ch.recv_header, sizeof(Header), cudaMemcpyDeviceToHost, ch.stream));
  COMM_CUDA_CHECK(cudaEventRecord(ch.received, ch.stream));
  s.wait_received(ch, stage_name(stage()), stage_name(peer));
  const Header got = *ch.recv_header_host;
  if (got.tag != tag || got.bytes != static_cast<int64_t>(bytes)) {
    nccl_fatal(stage_name(stage()) + ": expected message tag " + std::to_string(tag) + " of " + std::to_string(bytes) +
               " bytes from " + stage_name(peer) + ", got tag " + std::to_string(got.tag) + " of " +
               std::to_string(got.bytes) + " bytes: NCCL delivers in send order, so both stages must send and "
               "receive boundary messages in the same order");
  }
  if (!on_device) {
    COMM_CUDA_CHECK(cudaMemcpy(data, target, bytes, cudaMemcpyDeviceToHost));
  } else {
    // Later compute work on the destination runs after the receive.
    COMM_CUDA_CHECK(cudaStreamWaitEvent(s.compute_stream, ch.received, 0));
  }
}

void NcclTransport::flush() {
  Impl& s = *impl_;
  const double deadline = now_s() + s.timeout_s;
  for (auto& slot : s.send_slots) {
    while (slot.busy) {
      const cudaError_t q = cudaEventQuery(slot.done);
      if (q == cudaSuccess) {
        slot.busy = false;
        break;
      }
      if (q != cudaErrorNotReady) COMM_CUDA_CHECK(q);
      if (now_s() > deadline) {
        ncclCommAbort(s.up.comm);
        ncclCommAbort(s.down.comm);
        nccl_fatal(stage_name(stage()) + ": sends still in flight after " +
                   std::to_string(static_cast<int>(s.timeout_s)) + " s: a peer stopped receiving (dead or stalled)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
}

}  // namespace engine::comm

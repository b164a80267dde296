// engine/comm/transport.h: Transport, how one pipeline stage exchanges messages with the other stages, and
// WireStats, the counters of what crossed each boundary.
//
// Stages are numbered 0..S-1; boundary b joins stage b and stage b+1. Boundary traffic goes one hop: the code z
// travels `forward` (stage b -> b+1), its gradient travels `backward` (b+1 -> b). Every boundary message is
// counted by its sender, per boundary and direction. Two other exchanges exist: the tied-weight gradient (wte,
// held by the first and the last stage) and small collectives (loss, grad norm), counted apart.
//
// Implementations (one object per stage endpoint):
//   LocalTransport   (local_transport.h): in-process queues; the single-process executor runs all stages.
//   MpiTransport     (mpi_transport.h):   one process per stage, MPI_Isend/Irecv + polling with a deadline.
//   LinkEmulator     (link_emulator.h):   wraps any transport and delays delivery as a slow link would.
//   NcclTransport    (nccl_transport/):   one process per stage and per GPU, NCCL; carries device memory too.
// A wait that passes the deadline is fatal: the process prints
//   "stage S (rank R): no message from stage P (rank Q) within N s: peer dead or stalled"
// and exits non-zero, so a dead or stalled peer never hangs the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace engine::comm {

enum class Direction : uint8_t { forward = 0, backward = 1 };
const char* direction_name(Direction dir);  // "forward", "backward"

// Tags: boundary messages use the micro-batch index (FIFO per (peer, tag) orders successive steps); the rest
// use fixed tags above kMaxMicroBatches. Wrappers may add kTagWrapperBit for their own side messages.
constexpr int kMaxMicroBatches = 4096;
constexpr int kTagTied = 5000;
constexpr int kTagSampleCode = 5001;  // sampling: a prompt's code from stage s to stage s+1 (train/stage_logits.cc)
constexpr int kTagGather = 5002;      // a stage's parameters sent to rank 0 (--export-llmc)
constexpr int kTagWrapperBit = 8192;

// What was sent during a step (or since the last clear), per boundary and direction, plus the tied exchange.
struct WireStats {
  std::vector<uint64_t> bytes[2];     // [direction][boundary]: payload bytes sent
  std::vector<uint64_t> messages[2];  // [direction][boundary]: messages sent
  uint64_t tied_bytes = 0;            // tied-weight gradient exchange, both ways together

  explicit WireStats(int num_boundaries = 0) { resize(num_boundaries); }
  void resize(int num_boundaries);
  int num_boundaries() const { return static_cast<int>(bytes[0].size()); }
  void clear();
  uint64_t total_bytes(Direction dir) const;       // summed over boundaries
  uint64_t total_messages(Direction dir) const;
  void add(const WireStats& other);                // element-wise +=, to sum the stages' partial counts
  // Flattened to 4*num_boundaries + 1 doubles and back (exact for counts below 2^53), for gathering over MPI.
  void to_doubles(double* out) const;
  void add_doubles(const double* in);
  int num_doubles() const { return 4 * num_boundaries() + 1; }
};

class Transport {
 public:
  Transport(int stage, int num_stages);
  virtual ~Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  int stage() const { return stage_; }
  int num_stages() const { return num_stages_; }
  bool is_first() const { return stage_ == 0; }
  bool is_last() const { return stage_ == num_stages_ - 1; }

  // Whether send/recv (and the tied and raw ones) accept device (CUDA) memory as well as host memory. Only then may
  // a stage on the GPU hand the transport its device buffers (engine/pipeline/stage_runner.cc); otherwise it stages
  // them through host memory. Wrappers answer for the transport they wrap.
  virtual bool carries_device_memory() const { return false; }

  // ---- boundary traffic, counted
  // Sends `bytes` to the neighbour in direction `dir` (forward: stage+1, backward: stage-1). On return the
  // caller's buffer may be reused (the transport copies); the message may still be in flight.
  void send(Direction dir, int tag, const void* data, size_t bytes);
  // Receives the message travelling in direction `dir` (forward: from stage-1, backward: from stage+1) into
  // data. Blocks until it arrives; past the timeout: fatal error naming the peer. A size mismatch is fatal too.
  void recv(Direction dir, int tag, void* data, size_t bytes);
  // Whether recv(dir, tag, ...) would find its message already there (the single-process scheduler polls this).
  bool ready(Direction dir, int tag);

  // ---- tied-weight gradient, between the first and the last stage (counted in tied_bytes). Two halves so that
  // the single-process executor can interleave the two endpoints. On a one-stage pipeline there is no peer:
  // calling these is a logic error.
  void send_tied(const float* mine, size_t count);
  void recv_tied(float* theirs, size_t count);
  int tied_peer() const { return stage_ == 0 ? num_stages_ - 1 : 0; }

  // ---- collectives over all stages (MPI only; the single-process executor combines its stages itself).
  // all (num_stages * count) receives every stage's `count` doubles, in stage order, on every stage.
  virtual void allgather(const double* mine, int count, double* all) = 0;

  const WireStats& stats() const { return stats_; }
  void clear_stats() { stats_.clear(); }

  // "stage 2 (rank 2)": how error messages name a stage.
  virtual std::string stage_name(int stage) const;

  // ---- raw messages, uncounted: what implementations provide and wrappers forward to the transport they wrap.
  // peer is a stage index. Same semantics as send/recv above.
  virtual void send_raw(int peer, int tag, const void* data, size_t bytes) = 0;
  virtual void recv_raw(int peer, int tag, void* data, size_t bytes) = 0;
  virtual bool probe_raw(int peer, int tag) = 0;

 protected:
  int peer_of(Direction dir, bool sending) const;

 private:
  int stage_;
  int num_stages_;
  WireStats stats_;
};

}  // namespace engine::comm

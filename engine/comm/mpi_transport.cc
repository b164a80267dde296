// engine/comm/mpi_transport.cc: MpiTransport: pooled MPI_Isend, MPI_Irecv polled against a deadline, bounded
// collectives, and errors that name the peer stage and rank.
#include "engine/comm/mpi_transport.h"

#include <mpi.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace engine::comm {

namespace {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, len);
}

// Fatal communication error: flush what we printed and leave at once with status 3. No MPI_Finalize (a peer is
// gone; finalizing could wait for it), no destructors (they could wait too): mpirun then reports the exit and
// stops the remaining ranks, which are themselves bounded by their own deadlines.
[[noreturn]] void comm_fatal(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(3);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Back-off while polling: yield first (the peer may share our core when ranks outnumber cores), then sleep
// briefly so that waiting ranks leave the CPU to computing ones.
void poll_pause(int iteration) {
  if (iteration < 200) {
    sched_yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

int env_int(const char* const* names) {
  for (const char* const* n = names; *n != nullptr; ++n) {
    const char* v = std::getenv(*n);
    if (v != nullptr && *v != '\0') return std::atoi(v);
  }
  return -1;
}

}  // namespace

void mpi_check(int code, const char* call, const char* hint, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  comm_fatal(std::string("resbm fatal at ") + file + ":" + std::to_string(line) + ": " + call + " failed: " +
             mpi_error_string(code) + " (" + hint + ")");
}

int mpi_launch_rank() {
  static const char* const kNames[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", nullptr};
  return env_int(kNames);
}

int mpi_launch_size() {
  static const char* const kNames[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", nullptr};
  return env_int(kNames);
}

struct MpiTransport::Impl {
  struct PendingSend {
    MPI_Request request = MPI_REQUEST_NULL;
    int peer = -1;
    std::vector<char> buffer;  // kept between sends: once the pool has grown, sends allocate nothing
  };
  int rank = 0;       // in comm: the stage
  int size = 0;       // S
  int replica = 0;
  int num_replicas = 1;
  bool initialized_here = false;
  MPI_Comm comm = MPI_COMM_NULL;  // this replica's pipeline
  std::vector<PendingSend> sends;
};

namespace {

// This process's stage, from the launch environment (the transport's stage is known before MPI_Init).
int launch_stage(int num_stages) {
  const int rank = mpi_launch_rank();
  return rank >= 0 && num_stages > 0 ? rank % num_stages : 0;
}

// Waits for a collective started on `request`, polling against the timeout; `what` names it in the fatal message.
void wait_collective(MPI_Request& request, double timeout_s, const std::string& who, const std::string& what) {
  const double deadline = now_s() + timeout_s;
  for (int it = 0;; ++it) {
    int done = 0;
    const int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) comm_fatal(who + ": " + what + " failed: " + mpi_error_string(rc) + ": a peer is dead?");
    if (done) return;
    if (now_s() > deadline) {
      char seconds[32];
      std::snprintf(seconds, sizeof(seconds), "%g", timeout_s);
      comm_fatal(who + ": " + what + " did not complete within " + seconds + " s: a peer is dead or stalled");
    }
    poll_pause(it);
  }
}

// "stage 1 of replica 0 (rank 1)": with one replica, "stage 1 (rank 1)".
std::string rank_name(int stage, int replica, int num_stages, int num_replicas) {
  const std::string rank = " (rank " + std::to_string(replica * num_stages + stage) + ")";
  if (num_replicas == 1) return "stage " + std::to_string(stage) + rank;
  return "stage " + std::to_string(stage) + " of replica " + std::to_string(replica) + rank;
}

}  // namespace

MpiTransport::MpiTransport(int num_stages, double timeout_s, int num_replicas)
    : Transport(launch_stage(num_stages), num_stages), impl_(std::make_unique<Impl>()), timeout_s_(timeout_s) {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized), "is the MPI library usable?");
  if (!initialized) {
    MPI_CHECK(MPI_Init(nullptr, nullptr), "start the stages with //train --executor mpi (mpirun -np <stages>)");
    impl_->initialized_here = true;
  }
  int world_rank = 0, world_size = 0;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank), "MPI_Comm_rank");
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size), "MPI_Comm_size");
  const int ranks = num_stages * num_replicas;
  if (world_size != ranks || world_rank % num_stages != stage()) {
    const std::string layout = num_replicas == 1
                                   ? std::to_string(num_stages) + " stages need exactly " + std::to_string(ranks) +
                                         " MPI ranks, one per stage"
                                   : std::to_string(num_replicas) + " replicas x " + std::to_string(num_stages) +
                                         " stages need exactly " + std::to_string(ranks) + " MPI ranks";
    comm_fatal("MpiTransport: " + layout + "; this job has " + std::to_string(world_size) +
               " (launch with mpirun -np " + std::to_string(ranks) + ")");
  }
  impl_->replica = world_rank / num_stages;
  impl_->num_replicas = num_replicas;
  // Our own communicator (this replica's pipeline, ranked by stage) with MPI_ERRORS_RETURN: a failure involving a
  // dead peer comes back to us as a code that we turn into a message naming that peer, instead of MPI's default
  // abort.
  MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, impl_->replica, stage(), &impl_->comm), "splitting the pipelines");
  MPI_CHECK(MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN), "setting MPI_ERRORS_RETURN");
  MPI_CHECK(MPI_Comm_rank(impl_->comm, &impl_->rank), "MPI_Comm_rank");
  MPI_CHECK(MPI_Comm_size(impl_->comm, &impl_->size), "MPI_Comm_size");
}

MpiTransport::~MpiTransport() {
  flush();
  MPI_Comm_free(&impl_->comm);
  if (impl_->initialized_here) MPI_Finalize();
}

int MpiTransport::replica() const { return impl_->replica; }

std::string MpiTransport::stage_name(int stage) const {
  return rank_name(stage, impl_->replica, num_stages(), impl_->num_replicas);
}

void MpiTransport::send_raw(int peer, int tag, const void* data, size_t bytes) {
  if (bytes > static_cast<size_t>(INT32_MAX)) {
    comm_fatal(stage_name(stage()) + ": message of " + std::to_string(bytes) + " bytes exceeds MPI's int count");
  }
  // Reuse a completed slot (MPI_Test also drives progress of the others).
  Impl::PendingSend* slot = nullptr;
  for (auto& s : impl_->sends) {
    if (s.request != MPI_REQUEST_NULL) {
      int done = 0;
      const int rc = MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) {
        comm_fatal(stage_name(stage()) + ": sending to " + stage_name(s.peer) + " failed: " +
                   mpi_error_string(rc) + ": peer dead?");
      }
    }
    if (s.request == MPI_REQUEST_NULL && slot == nullptr) slot = &s;
  }
  if (slot == nullptr) {
    impl_->sends.emplace_back();
    slot = &impl_->sends.back();
  }
  slot->buffer.resize(bytes);
  if (bytes > 0) std::memcpy(slot->buffer.data(), data, bytes);
  slot->peer = peer;
  const int rc = MPI_Isend(slot->buffer.data(), static_cast<int>(bytes), MPI_BYTE, peer, tag, impl_->comm,
                           &slot->request);
  if (rc != MPI_SUCCESS) {
    comm_fatal(stage_name(stage()) + ": MPI_Isend to " + stage_name(peer) + " failed: " + mpi_error_string(rc) +
               ": peer dead?");
  }
}

void MpiTransport::recv_raw(int peer, int tag, void* data, size_t bytes) {
  MPI_Request request;
  int rc = MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, impl_->comm, &request);
  if (rc != MPI_SUCCESS) {
    comm_fatal(stage_name(stage()) + ": MPI_Irecv from " + stage_name(peer) + " failed: " + mpi_error_string(rc));
  }
  const double deadline = now_s() + timeout_s_;
  MPI_Status status;
  for (int it = 0;; ++it) {
    int done = 0;
    rc = MPI_Test(&request, &done, &status);
    if (rc != MPI_SUCCESS) {
      comm_fatal(stage_name(stage()) + ": receiving from " + stage_name(peer) + " failed: " +
                 mpi_error_string(rc) + ": peer dead?");
    }
    if (done) break;
    // Drive our own pending sends too: the peer may be waiting on one of them.
    for (auto& s : impl_->sends) {
      if (s.request == MPI_REQUEST_NULL) continue;
      int sent = 0;
      MPI_Test(&s.request, &sent, MPI_STATUS_IGNORE);
    }
    if (now_s() > deadline) {
      char seconds[32];
      std::snprintf(seconds, sizeof(seconds), "%g", timeout_s_);
      comm_fatal(stage_name(stage()) + ": no message from " + stage_name(peer) + " within " + seconds +
                 " s: peer dead or stalled");
    }
    poll_pause(it);
  }
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  if (static_cast<size_t>(count) != bytes) {
    comm_fatal(stage_name(stage()) + ": expected " + std::to_string(bytes) + " bytes from " + stage_name(peer) +
               " (tag " + std::to_string(tag) + "), got " + std::to_string(count) +
               ": the stages disagree on shapes or flags");
  }
}

bool MpiTransport::probe_raw(int peer, int tag) {
  int flag = 0;
  MPI_CHECK(MPI_Iprobe(peer, tag, impl_->comm, &flag, MPI_STATUS_IGNORE), "probing for a message");
  return flag != 0;
}

void MpiTransport::allgather(const double* mine, int count, double* all) {
  MPI_Request request;
  MPI_CHECK(MPI_Iallgather(mine, count, MPI_DOUBLE, all, count, MPI_DOUBLE, impl_->comm, &request),
            "starting the allgather of per-stage scalars");
  wait_collective(request, timeout_s_, stage_name(stage()),
                  "allgather over all " + std::to_string(num_stages()) + " stages");
}

namespace {

// The replicas of one stage: ranks stage, S + stage, 2 S + stage, ... of MPI_COMM_WORLD, ranked by replica.
class MpiReplicaGroup : public ReplicaGroup {
 public:
  MpiReplicaGroup(int stage, int replica, int num_stages, int num_replicas, double timeout_s)
      : stage_(stage), replica_(replica), num_stages_(num_stages), num_replicas_(num_replicas),
        timeout_s_(timeout_s) {
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, stage, replica, &comm_), "splitting the replica groups");
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "setting MPI_ERRORS_RETURN");
  }
  ~MpiReplicaGroup() override { MPI_Comm_free(&comm_); }

  int replica() const override { return replica_; }
  int num_replicas() const override { return num_replicas_; }
  void allgather(const float* mine, size_t count, float* all) override { gather(mine, count, MPI_FLOAT, all); }
  void allgather(const double* mine, size_t count, double* all) override { gather(mine, count, MPI_DOUBLE, all); }

 private:
  void gather(const void* mine, size_t count, MPI_Datatype type, void* all) {
    const std::string who = rank_name(stage_, replica_, num_stages_, num_replicas_);
    if (count > static_cast<size_t>(INT32_MAX)) {
      comm_fatal(who + ": a data-parallel sync of " + std::to_string(count) + " values exceeds MPI's int count");
    }
    MPI_Request request;
    MPI_CHECK(MPI_Iallgather(mine, static_cast<int>(count), type, all, static_cast<int>(count), type, comm_,
                             &request),
              "starting the data-parallel allgather between replicas");
    wait_collective(request, timeout_s_, who,
                    "the data-parallel sync with the other " + std::to_string(num_replicas_ - 1) +
                        " replica(s) of stage " + std::to_string(stage_));
  }

  int stage_, replica_, num_stages_, num_replicas_;
  double timeout_s_;
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace

std::unique_ptr<ReplicaGroup> MpiTransport::open_replica_group() {
  return std::make_unique<MpiReplicaGroup>(stage(), impl_->replica, num_stages(), impl_->num_replicas, timeout_s_);
}

void MpiTransport::flush() {
  const double deadline = now_s() + timeout_s_;
  for (auto& s : impl_->sends) {
    for (int it = 0; s.request != MPI_REQUEST_NULL; ++it) {
      int done = 0;
      const int rc = MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) {
        comm_fatal(stage_name(stage()) + ": sending to " + stage_name(s.peer) + " failed: " +
                   mpi_error_string(rc) + ": peer dead?");
      }
      if (done) break;
      if (now_s() > deadline) {
        comm_fatal(stage_name(stage()) + ": " + stage_name(s.peer) +
                   " did not take a message within the timeout: peer dead or stalled");
      }
      poll_pause(it);
    }
  }
}

}  // namespace engine::comm

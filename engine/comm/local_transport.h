// engine/comm/local_transport.h: LocalTransport, in-process message queues joining the stages of one process.
//
// The single-process executor (engine/pipeline) runs all S stages in one thread; each stage gets an endpoint of
// one LocalHub. A send copies the bytes into the queue of (sender, receiver, tag); a recv pops the oldest. A recv
// on an empty queue can never be satisfied in one thread, so it is a fatal scheduling error, not a wait.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "engine/comm/transport.h"

namespace engine::comm {

// The shared queues. Buffers of delivered messages are kept and reused, so a steady-state step allocates nothing.
class LocalHub {
 public:
  explicit LocalHub(int num_stages) : num_stages_(num_stages) {}
  int num_stages() const { return num_stages_; }
  void push(int from, int to, int tag, const void* data, size_t bytes);
  bool has(int from, int to, int tag) const;
  // Pops the oldest message (from, to, tag) into data; fatal if none or if its size differs from bytes.
  void pop(int from, int to, int tag, void* data, size_t bytes);

 private:
  using Key = std::tuple<int, int, int>;
  int num_stages_;
  std::map<Key, std::deque<std::vector<char>>> queues_;
  std::vector<std::vector<char>> free_;  // recycled message buffers
};

class LocalTransport : public Transport {
 public:
  LocalTransport(LocalHub& hub, int stage) : Transport(stage, hub.num_stages()), hub_(hub) {}

  // The single-process executor combines its stages directly; a collective here is a logic error (fatal).
  void allgather(const double* mine, int count, double* all) override;
  void send_raw(int peer, int tag, const void* data, size_t bytes) override;
  void recv_raw(int peer, int tag, void* data, size_t bytes) override;
  bool probe_raw(int peer, int tag) override;

 private:
  LocalHub& hub_;
};

// S endpoints of one new hub (the hub lives as long as the returned transports; it is owned by the first).
std::vector<std::unique_ptr<Transport>> make_local_transports(int num_stages);

}  // namespace engine::comm

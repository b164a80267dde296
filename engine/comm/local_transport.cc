// engine/comm/local_transport.cc: LocalHub queues and the LocalTransport endpoints of one process.
#include "engine/comm/local_transport.h"

#include <cstring>

#include "engine/check.h"

namespace engine::comm {

void LocalHub::push(int from, int to, int tag, const void* data, size_t bytes) {
  std::vector<char> buffer;
  if (!free_.empty()) {
    buffer = std::move(free_.back());
    free_.pop_back();
  }
  buffer.resize(bytes);  // no allocation once the recycled buffers have reached their steady sizes
  if (bytes > 0) std::memcpy(buffer.data(), data, bytes);
  queues_[Key{from, to, tag}].push_back(std::move(buffer));
}

bool LocalHub::has(int from, int to, int tag) const {
  auto it = queues_.find(Key{from, to, tag});
  return it != queues_.end() && !it->second.empty();
}

void LocalHub::pop(int from, int to, int tag, void* data, size_t bytes) {
  auto it = queues_.find(Key{from, to, tag});
  ENGINE_CHECK(it != queues_.end() && !it->second.empty(),
               "LocalTransport: stage %d waits for a message from stage %d (tag %d) that was never sent: the "
               "single-process schedule ran an action before its input (a scheduler bug)",
               to, from, tag);
  std::vector<char>& front = it->second.front();
  ENGINE_CHECK(front.size() == bytes,
               "LocalTransport: stage %d expected %zu bytes from stage %d (tag %d), the message has %zu: the "
               "stages disagree on the code shape or dtype",
               to, bytes, from, tag, front.size());
  if (bytes > 0) std::memcpy(data, front.data(), bytes);
  free_.push_back(std::move(front));
  it->second.pop_front();
}

void LocalTransport::allgather(const double*, int, double*) {
  ENGINE_FATAL("LocalTransport::allgather: the single-process executor combines its stages itself; a "
               "collective on a local endpoint is a logic error");
}

void LocalTransport::send_raw(int peer, int tag, const void* data, size_t bytes) {
  hub_.push(stage(), peer, tag, data, bytes);
}

void LocalTransport::recv_raw(int peer, int tag, void* data, size_t bytes) {
  hub_.pop(peer, stage(), tag, data, bytes);
}

bool LocalTransport::probe_raw(int peer, int tag) { return hub_.has(peer, stage(), tag); }

namespace {
// The first endpoint owns the hub, so the hub lives exactly as long as the set of endpoints is used together.
class OwningLocalTransport : public LocalTransport {
 public:
  explicit OwningLocalTransport(std::unique_ptr<LocalHub> hub) : LocalTransport(*hub, 0), hub_(std::move(hub)) {}

 private:
  std::unique_ptr<LocalHub> hub_;
};
}  // namespace

std::vector<std::unique_ptr<Transport>> make_local_transports(int num_stages) {
  auto hub = std::make_unique<LocalHub>(num_stages);
  LocalHub& ref = *hub;
  std::vector<std::unique_ptr<Transport>> out;
  out.push_back(std::make_unique<OwningLocalTransport>(std::move(hub)));
  for (int s = 1; s < num_stages; ++s) out.push_back(std::make_unique<LocalTransport>(ref, s));
  return out;
}

}  // namespace engine::comm

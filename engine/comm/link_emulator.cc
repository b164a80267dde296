// engine/comm/link_emulator.cc: LinkEmulator: arrival-time stamping on send (boundary codes and the tied-weight
// gradient), waiting for arrival on receive.
#include "engine/comm/link_emulator.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "engine/check.h"

namespace engine::comm {

namespace {
class SteadyClock : public Clock {
 public:
  double now_s() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  void sleep_until_s(double t) override {
    const double wait = t - now_s();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
};
}  // namespace

std::unique_ptr<Clock> make_steady_clock() { return std::make_unique<SteadyClock>(); }

LinkEmulator::LinkEmulator(std::unique_ptr<Transport> inner, LinkConfig link, std::unique_ptr<Clock> clock)
    : Transport(inner->stage(), inner->num_stages()),
      inner_(std::move(inner)),
      link_(link),
      clock_(clock ? std::move(clock) : make_steady_clock()) {
  ENGINE_CHECK(link_.latency_ms >= 0, "--link-latency-ms must be >= 0, got %g", link_.latency_ms);
}

double LinkEmulator::schedule(int peer, size_t bytes, double t) {
  ENGINE_CHECK(peer == stage() + 1 || peer == stage() - 1, "LinkEmulator: %s has no wire to stage %d",
               stage_name(stage()).c_str(), peer);
  return occupy(wire_free_[peer == stage() + 1 ? 0 : 1], bytes, t);
}

double LinkEmulator::schedule_tied(size_t bytes, double t) {
  ENGINE_CHECK(num_stages() > 1 && (is_first() || is_last()),
               "LinkEmulator: %s has no tied-weight wire (only the first and the last of >= 2 stages)",
               stage_name(stage()).c_str());
  return occupy(tied_wire_free_, bytes, t);
}

double LinkEmulator::occupy(double& wire_free, size_t bytes, double t) const {
  const double start = std::max(t, wire_free);
  const double transmit = link_.mbps > 0 ? 8.0 * static_cast<double>(bytes) / (link_.mbps * 1e6) : 0.0;
  wire_free = start + transmit;
  return wire_free + link_.latency_ms * 1e-3;
}

void LinkEmulator::send_raw(int peer, int tag, const void* data, size_t bytes) {
  if (!is_delayed_tag(tag)) {
    inner_->send_raw(peer, tag, data, bytes);
    return;
  }
  // The arrival time travels first, on a side tag, so the receiver knows how long to hold the payload.
  const double now = clock_->now_s();
  double arrival = 0.0;
  if (tag == kTagTied) {
    ENGINE_CHECK(peer == tied_peer(), "LinkEmulator: %s sends the tied gradient to stage %d, not to stage %d",
                 stage_name(stage()).c_str(), peer, tied_peer());
    arrival = schedule_tied(bytes, now);
  } else {
    arrival = schedule(peer, bytes, now);
  }
  inner_->send_raw(peer, tag | kTagWrapperBit, &arrival, sizeof(arrival));
  inner_->send_raw(peer, tag, data, bytes);
}

void LinkEmulator::recv_raw(int peer, int tag, void* data, size_t bytes) {
  if (!is_delayed_tag(tag)) {
    inner_->recv_raw(peer, tag, data, bytes);
    return;
  }
  double arrival = 0.0;
  inner_->recv_raw(peer, tag | kTagWrapperBit, &arrival, sizeof(arrival));
  inner_->recv_raw(peer, tag, data, bytes);
  clock_->sleep_until_s(arrival);
}

}  // namespace engine::comm

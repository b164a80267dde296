// engine/comm/link_emulator.cc: LinkEmulator: arrival-time stamping on send (boundary codes and the tied-weight
// gradient), waiting for arrival on receive.
#include "engine/comm/link_emulator.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <thread>

#include "engine/check.h"

namespace engine::comm {

namespace {
// node mode's side message: {departure, end on the sender's uplink, tag, bytes}, on a tag no payload uses.
constexpr int kTagNodeStamp = kTagWrapperBit | (kTagTied - 1);
struct NodeStamp {
  double depart, out_end, tag, bytes;
};

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
  for (int peer : {stage() - 1, stage() + 1, num_stages() > 1 && (is_first() || is_last()) ? tied_peer() : -1}) {
    const bool known = std::find(inbound_peers_.begin(), inbound_peers_.end(), peer) != inbound_peers_.end();
    if (peer >= 0 && peer < num_stages() && peer != stage() && !known) inbound_peers_.push_back(peer);
  }
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
  return occupy_wire(wire_free, t, transmit_s(bytes, link_.mbps)) + link_.latency_ms * 1e-3;
}

void LinkEmulator::send_node(int peer, int tag, const void* data, size_t bytes) {
  const double x = transmit_s(bytes, link_.mbps);
  const double out_end = occupy_wire(out_free_, clock_->now_s(), x);
  const NodeStamp stamp{out_end - x, out_end, static_cast<double>(tag), static_cast<double>(bytes)};
  inner_->send_raw(peer, kTagNodeStamp, &stamp, sizeof(stamp));
  inner_->send_raw(peer, tag, data, bytes);
}

double LinkEmulator::node_arrival(int peer, int tag) {
  std::deque<double>& mine = arrivals_[{peer, tag}];
  while (mine.empty()) {
    // Wait for the next stamp from `peer` (each sender's stamps come in order), then take what the other senders
    // have posted by now, and charge the inbound wire in order of departure.
    std::vector<std::pair<int, NodeStamp>> batch;
    NodeStamp stamp{};
    inner_->recv_raw(peer, kTagNodeStamp, &stamp, sizeof(stamp));
    batch.push_back({peer, stamp});
    for (int q : inbound_peers_) {
      while (inner_->probe_raw(q, kTagNodeStamp)) {
        inner_->recv_raw(q, kTagNodeStamp, &stamp, sizeof(stamp));
        batch.push_back({q, stamp});
      }
    }
    std::stable_sort(batch.begin(), batch.end(),
                     [](const auto& a, const auto& b) { return a.second.depart < b.second.depart; });
    for (const auto& [q, s] : batch) {
      const double end = cross_inbound(in_free_, s.depart, s.out_end,
                                       transmit_s(static_cast<size_t>(s.bytes), link_.mbps));
      arrivals_[{q, static_cast<int>(s.tag)}].push_back(end + link_.latency_ms * 1e-3);
    }
  }
  const double arrival = mine.front();
  mine.pop_front();
  return arrival;
}

void LinkEmulator::send_raw(int peer, int tag, const void* data, size_t bytes) {
  if (!is_delayed_tag(tag)) {
    inner_->send_raw(peer, tag, data, bytes);
    return;
  }
  if (tag == kTagTied) {
    ENGINE_CHECK(peer == tied_peer(), "LinkEmulator: %s sends the tied gradient to stage %d, not to stage %d",
                 stage_name(stage()).c_str(), peer, tied_peer());
  }
  if (link_.mode == LinkMode::node) {
    send_node(peer, tag, data, bytes);
    return;
  }
  // The arrival time travels first, on a side tag, so the receiver knows how long to hold the payload.
  const double now = clock_->now_s();
  double arrival = 0.0;
  if (tag == kTagTied) {
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
  if (link_.mode == LinkMode::node) {
    const double arrival = node_arrival(peer, tag);
    inner_->recv_raw(peer, tag, data, bytes);
    clock_->sleep_until_s(arrival);
    return;
  }
  double arrival = 0.0;
  inner_->recv_raw(peer, tag | kTagWrapperBit, &arrival, sizeof(arrival));
  inner_->recv_raw(peer, tag, data, bytes);
  clock_->sleep_until_s(arrival);
}

}  // namespace engine::comm

// engine/comm/link_emulator.h: LinkEmulator, a Transport wrapper that delivers boundary messages as a link of a
// given rate and latency would.
//
// Two models (LinkConfig::mode; the arithmetic is engine/comm/link_model.h, shared with tools/wan_sim):
//   boundary: each direction of each boundary is one wire that carries one message at a time. A message of n bytes
//     sent at time t (the sender's clock) arrives at
//       arrival = max(t, wire_free) + 8 n / rate + latency,      and then wire_free = max(t, wire_free) + 8 n / rate.
//     Forward and backward wires are independent (full duplex). The sender, which alone uses the wire, computes
//     the arrival time and sends it ahead of the payload (an uncounted 8-byte side message).
//   node: each stage has one outbound and one inbound wire (a home connection): codes from stage-1, gradients
//     from stage+1 and the tied gradient all share the inbound one. The sender charges its outbound wire and sends
//     the departure ahead of the payload (a side message on a tag of its own); the inbound wire has two senders,
//     so the receiver charges it: when it needs a message it takes the stamps every sender has posted so far and
//     charges them in order of departure (the order the wire would see them: a stamp is posted when its message is
//     sent, on the one clock).
// The receiver waits until its clock reaches the arrival. The sender never waits, so compute overlaps
// communication. All ranks must share one clock (one machine: CLOCK_MONOTONIC is system-wide).
//
// The tied-weight gradient exchange (kTagTied, between stage 0 and stage S-1) is delayed by the same model on
// wires of its own: one per direction between the first and the last stage, independent of the boundary wires
// (even at S = 2, where the two stages are also neighbours), stamped by the sender's clock like any message.
// Only timing changes; the payload is delivered bitwise as sent. Collectives pass through undelayed.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "engine/comm/link_model.h"
#include "engine/comm/transport.h"

namespace engine::comm {

// Time source, replaceable in tests.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual double now_s() = 0;                // seconds, monotonic
  virtual void sleep_until_s(double t) = 0;  // returns at once if t <= now
};
// std::chrono::steady_clock (CLOCK_MONOTONIC on Linux: the same for every process of one machine).
std::unique_ptr<Clock> make_steady_clock();

struct LinkConfig {
  double mbps = 0.0;        // link rate in Mbit/s (10^6 bits); <= 0: infinite rate
  double latency_ms = 0.0;  // one-way latency
  LinkMode mode = LinkMode::boundary;
};

class LinkEmulator : public Transport {
 public:
  // Wraps inner (which it owns). clock: null for the steady clock.
  LinkEmulator(std::unique_ptr<Transport> inner, LinkConfig link, std::unique_ptr<Clock> clock = nullptr);

  // The arrival time of a message of `bytes` sent at `t` on the wire that leads to `peer`; updates that wire.
  double schedule(int peer, size_t bytes, double t);
  // The same for the tied-weight gradient, on this stage's outgoing tied wire (to tied_peer()); updates it.
  double schedule_tied(size_t bytes, double t);

  void allgather(const double* mine, int count, double* all) override { inner_->allgather(mine, count, all); }
  void send_raw(int peer, int tag, const void* data, size_t bytes) override;
  void recv_raw(int peer, int tag, void* data, size_t bytes) override;
  bool probe_raw(int peer, int tag) override { return inner_->probe_raw(peer, tag); }
  // The payload passes through untouched (the arrival stamp is a host double of its own): whatever inner carries.
  bool carries_device_memory() const override { return inner_->carries_device_memory(); }
  std::string stage_name(int stage) const override { return inner_->stage_name(stage); }
  Transport& inner() { return *inner_; }

 private:
  bool is_boundary_tag(int tag) const { return tag < kMaxMicroBatches; }
  bool is_delayed_tag(int tag) const { return is_boundary_tag(tag) || tag == kTagTied; }
  double occupy(double& wire_free, size_t bytes, double t) const;
  // node mode: the arrival time of the next message from `peer` on `tag` (charging the inbound wire as needed).
  double node_arrival(int peer, int tag);
  void send_node(int peer, int tag, const void* data, size_t bytes);
  std::unique_ptr<Transport> inner_;
  LinkConfig link_;
  std::unique_ptr<Clock> clock_;
  double wire_free_[2] = {0.0, 0.0};  // [0]: wire to stage+1, [1]: wire to stage-1
  double tied_wire_free_ = 0.0;       // wire to tied_peer() (first <-> last stage)
  // node mode
  double out_free_ = 0.0, in_free_ = 0.0;
  std::vector<int> inbound_peers_;                        // the stages that send to this one
  std::map<std::pair<int, int>, std::deque<double>> arrivals_;  // (peer, tag) -> charged arrival times, in order
};

}  // namespace engine::comm

// engine/comm/link_model.h: the arithmetic of an emulated link, shared by the link emulator (link_emulator.h) and the
// pipeline simulator (tools/wan_sim), so that a simulated step and an emulated one charge a message the same way.
//
// Two layouts of wires (LinkMode):
//   boundary: each direction of each pipeline boundary is a wire of its own (and one per direction between the
//             first and the last stage for the tied-weight gradient). A message of n bytes sent at t arrives at
//               max(t, wire_free) + 8 n / rate + latency.
//   node:     each node (stage) has one outbound wire (its uplink) and one inbound wire (its downlink): everything
//             it sends shares the first, everything it receives (codes from stage-1 *and* gradients from stage+1,
//             the tied gradient) the second, as on a home connection. A message leaves the sender's uplink at
//               depart = max(t, out_free),  out_end = depart + 8 n / up_rate,
//             then crosses the receiver's downlink, which takes messages in order of departure:
//               in_end = max(max(depart, in_free) + 8 n / down_rate, out_end),   arrival = in_end + latency.
//             (The message streams through both wires: it cannot finish before the slower one has carried it.)
#pragma once

#include <cstddef>
#include <string>

namespace engine::comm {

enum class LinkMode : unsigned char { boundary, node };
LinkMode parse_link_mode(const std::string& name);  // "boundary", "node"; std::invalid_argument otherwise
const char* link_mode_name(LinkMode mode);

// Seconds to put `bytes` on a wire of `mbps` Mbit/s (10^6 bits); 0 at mbps <= 0 (an infinite rate).
double transmit_s(size_t bytes, double mbps);

// A wire that carries one message at a time: the message starts at max(t, free), holds the wire `seconds`; returns
// the end of its transmission, which is also the wire's new `free`.
double occupy_wire(double& wire_free, double t, double seconds);

// node mode, receiving side: the message left the sender's uplink at `depart` and finished there at `out_end`;
// returns when it has fully crossed the inbound wire (add the latency for its arrival) and updates in_free.
double cross_inbound(double& in_free, double depart, double out_end, double seconds);

}  // namespace engine::comm

// engine/comm/link_model.cc: link modes and the per-wire arithmetic of link_model.h.
#include "engine/comm/link_model.h"

#include <algorithm>
#include <stdexcept>

namespace engine::comm {

LinkMode parse_link_mode(const std::string& name) {
  if (name == "boundary") return LinkMode::boundary;
  if (name == "node") return LinkMode::node;
  throw std::invalid_argument("unknown link mode '" + name + "': expected boundary or node");
}

const char* link_mode_name(LinkMode mode) { return mode == LinkMode::boundary ? "boundary" : "node"; }

double transmit_s(size_t bytes, double mbps) {
  return mbps > 0.0 ? 8.0 * static_cast<double>(bytes) / (mbps * 1e6) : 0.0;
}

double occupy_wire(double& wire_free, double t, double seconds) {
  wire_free = std::max(t, wire_free) + seconds;
  return wire_free;
}

double cross_inbound(double& in_free, double depart, double out_end, double seconds) {
  in_free = std::max(std::max(depart, in_free) + seconds, out_end);
  return in_free;
}

}  // namespace engine::comm

// engine/comm/transport.cc: the counted boundary/tied operations of Transport, and WireStats.
#include "engine/comm/transport.h"

#include <string>

#include "engine/check.h"

namespace engine::comm {

const char* direction_name(Direction dir) { return dir == Direction::forward ? "forward" : "backward"; }

void WireStats::resize(int num_boundaries) {
  for (int d = 0; d < 2; ++d) {
    bytes[d].assign(num_boundaries, 0);
    messages[d].assign(num_boundaries, 0);
  }
  tied_bytes = 0;
}

void WireStats::clear() { resize(num_boundaries()); }

uint64_t WireStats::total_bytes(Direction dir) const {
  uint64_t sum = 0;
  for (uint64_t b : bytes[static_cast<int>(dir)]) sum += b;
  return sum;
}

uint64_t WireStats::total_messages(Direction dir) const {
  uint64_t sum = 0;
  for (uint64_t m : messages[static_cast<int>(dir)]) sum += m;
  return sum;
}

void WireStats::add(const WireStats& other) {
  ENGINE_CHECK(other.num_boundaries() == num_boundaries(), "WireStats::add: %d vs %d boundaries",
               other.num_boundaries(), num_boundaries());
  for (int d = 0; d < 2; ++d) {
    for (int b = 0; b < num_boundaries(); ++b) {
      bytes[d][b] += other.bytes[d][b];
      messages[d][b] += other.messages[d][b];
    }
  }
  tied_bytes += other.tied_bytes;
}

void WireStats::to_doubles(double* out) const {
  const int nb = num_boundaries();
  for (int d = 0; d < 2; ++d) {
    for (int b = 0; b < nb; ++b) {
      out[(2 * d) * nb + b] = static_cast<double>(bytes[d][b]);
      out[(2 * d + 1) * nb + b] = static_cast<double>(messages[d][b]);
    }
  }
  out[4 * nb] = static_cast<double>(tied_bytes);
}

void WireStats::add_doubles(const double* in) {
  const int nb = num_boundaries();
  for (int d = 0; d < 2; ++d) {
    for (int b = 0; b < nb; ++b) {
      bytes[d][b] += static_cast<uint64_t>(in[(2 * d) * nb + b]);
      messages[d][b] += static_cast<uint64_t>(in[(2 * d + 1) * nb + b]);
    }
  }
  tied_bytes += static_cast<uint64_t>(in[4 * nb]);
}

Transport::Transport(int stage, int num_stages)
    : stage_(stage), num_stages_(num_stages), stats_(num_stages > 0 ? num_stages - 1 : 0) {
  ENGINE_CHECK(num_stages >= 1 && stage >= 0 && stage < num_stages,
               "Transport: stage %d of %d stages is out of range", stage, num_stages);
}

std::string Transport::stage_name(int stage) const { return "stage " + std::to_string(stage); }

int Transport::peer_of(Direction dir, bool sending) const {
  // Sending forward goes to stage+1; receiving forward comes from stage-1; backward mirrors it.
  const bool up = (dir == Direction::forward) == sending;
  const int peer = up ? stage_ + 1 : stage_ - 1;
  ENGINE_CHECK(peer >= 0 && peer < num_stages_, "%s: no %s neighbour to %s (%d stages)",
               stage_name(stage_).c_str(), direction_name(dir), sending ? "send to" : "receive from",
               num_stages_);
  return peer;
}

void Transport::send(Direction dir, int tag, const void* data, size_t bytes) {
  ENGINE_CHECK(tag >= 0 && tag < kMaxMicroBatches, "Transport::send: boundary tag %d out of [0, %d)", tag,
               kMaxMicroBatches);
  const int peer = peer_of(dir, /*sending=*/true);
  // Boundary b joins stage b and b+1: forward from stage b, backward from stage b+1.
  const int boundary = dir == Direction::forward ? stage_ : stage_ - 1;
  stats_.bytes[static_cast<int>(dir)][boundary] += bytes;
  stats_.messages[static_cast<int>(dir)][boundary] += 1;
  send_raw(peer, tag, data, bytes);
}

void Transport::recv(Direction dir, int tag, void* data, size_t bytes) {
  recv_raw(peer_of(dir, /*sending=*/false), tag, data, bytes);
}

bool Transport::ready(Direction dir, int tag) { return probe_raw(peer_of(dir, /*sending=*/false), tag); }

void Transport::send_tied(const float* mine, size_t count) {
  ENGINE_CHECK(num_stages_ > 1 && (is_first() || is_last()),
               "%s: the tied-weight exchange is between the first and the last of >= 2 stages",
               stage_name(stage_).c_str());
  stats_.tied_bytes += count * sizeof(float);
  send_raw(tied_peer(), kTagTied, mine, count * sizeof(float));
}

void Transport::recv_tied(float* theirs, size_t count) {
  ENGINE_CHECK(num_stages_ > 1 && (is_first() || is_last()),
               "%s: the tied-weight exchange is between the first and the last of >= 2 stages",
               stage_name(stage_).c_str());
  recv_raw(tied_peer(), kTagTied, theirs, count * sizeof(float));
}

}  // namespace engine::comm

// Tests of the link emulator's timing model with a fake clock: serialisation on a busy wire, latency, independent
// directions, infinite rate, that receivers wait until the arrival time the sender stamped, and that the tied-weight
// gradient (first <-> last stage) is delayed the same way on wires of its own, delivered bitwise intact.
#include "engine/comm/link_emulator.h"

#include <cstring>
#include <vector>

#include "engine/comm/local_transport.h"
#include "gtest/gtest.h"

namespace engine::comm {
namespace {

// A clock the test moves by hand; sleep_until jumps to the target and records it.
class FakeClock : public Clock {
 public:
  explicit FakeClock(double* now) : now_(now) {}
  double now_s() override { return *now_; }
  void sleep_until_s(double t) override {
    sleeps.push_back(t);
    if (t > *now_) *now_ = t;
  }
  std::vector<double> sleeps;

 private:
  double* now_;
};

// Two stages over local queues, each endpoint wrapped in an emulator sharing one fake time.
struct Pair {
  double now = 0.0;
  FakeClock* clock0;
  FakeClock* clock1;
  std::unique_ptr<LinkEmulator> s0, s1;
  explicit Pair(LinkConfig link) {
    auto local = make_local_transports(2);
    auto c0 = std::make_unique<FakeClock>(&now);
    auto c1 = std::make_unique<FakeClock>(&now);
    clock0 = c0.get();
    clock1 = c1.get();
    s0 = std::make_unique<LinkEmulator>(std::move(local[0]), link, std::move(c0));
    s1 = std::make_unique<LinkEmulator>(std::move(local[1]), link, std::move(c1));
    // s0 owns the hub (local[0]); s1's endpoint refers to it, so keep s0 alive as long as s1: members do.
  }
};

TEST(LinkEmulator, ArrivalIsWireFreePlusTransmissionPlusLatency) {
  Pair p({8.0, 50.0});  // 8 Mbit/s: 10^6 bytes take exactly 1 s on the wire; 50 ms latency
  // Forward wire of stage 0: idle, so the first message starts at once.
  EXPECT_DOUBLE_EQ(p.s0->schedule(1, 1000000, 0.0), 1.05);
  // Sent at 0.5 while the wire is busy until 1.0: it queues behind the first.
  EXPECT_DOUBLE_EQ(p.s0->schedule(1, 1000000, 0.5), 2.05);
  // Sent at 3.0 after the wire went idle at 2.0: starts at once again.
  EXPECT_DOUBLE_EQ(p.s0->schedule(1, 500000, 3.0), 3.55);
  // Stage 1's backward wire is independent of stage 0's forward wire (full duplex).
  EXPECT_DOUBLE_EQ(p.s1->schedule(0, 1000000, 0.5), 1.55);
}

TEST(LinkEmulator, InfiniteRateAddsOnlyLatency) {
  Pair p({0.0, 10.0});
  EXPECT_DOUBLE_EQ(p.s0->schedule(1, 1 << 30, 2.0), 2.01);
  EXPECT_DOUBLE_EQ(p.s0->schedule(1, 1 << 30, 2.0), 2.01);  // no wire occupancy at infinite rate
}

TEST(LinkEmulator, ReceiverWaitsForTheStampedArrival) {
  Pair p({8.0, 50.0});
  std::vector<char> payload(1000000, 'x'), got(1000000);
  p.s0->send(Direction::forward, 0, payload.data(), payload.size());  // sent at 0 -> arrives at 1.05
  p.now = 0.2;                                                        // the receiver asks at 0.2
  p.s1->recv(Direction::forward, 0, got.data(), got.size());
  ASSERT_EQ(p.clock1->sleeps.size(), 1u);
  EXPECT_DOUBLE_EQ(p.clock1->sleeps[0], 1.05);
  EXPECT_DOUBLE_EQ(p.now, 1.05);
  EXPECT_EQ(got, payload);
  // Sent at 1.05 (the wire has been free since 1.0): arrives at 2.1. The receiver comes late, at 5.0: no wait.
  p.s0->send(Direction::forward, 1, payload.data(), payload.size());
  p.now = 5.0;
  p.s1->recv(Direction::forward, 1, got.data(), got.size());
  EXPECT_DOUBLE_EQ(p.clock1->sleeps[1], 2.1);
  EXPECT_DOUBLE_EQ(p.now, 5.0);
  // Only the payload is counted (the 8-byte arrival stamp is the emulator's own side message).
  EXPECT_EQ(p.s0->stats().total_bytes(Direction::forward), 2000000u);
  EXPECT_EQ(p.s0->stats().total_messages(Direction::forward), 2u);
}

TEST(LinkEmulator, TiedExchangeIsDelayedOnItsOwnWires) {
  Pair p({8.0, 50.0});  // 8 Mbit/s: 10^6 bytes take 1 s; 50 ms latency
  // Stage 0 -> stage S-1 (here 1): arrival = max(t, wire free) + 8 n / rate + latency.
  EXPECT_DOUBLE_EQ(p.s0->schedule_tied(1000000, 0.0), 1.05);
  // Queued behind the first on the same tied wire.
  EXPECT_DOUBLE_EQ(p.s0->schedule_tied(1000000, 0.5), 2.05);
  // The tied wire is not the boundary wire, though at S = 2 both lead to stage 1: the forward wire is idle.
  EXPECT_DOUBLE_EQ(p.s0->schedule(1, 1000000, 0.5), 1.55);
  // The other direction (stage S-1 -> stage 0) is a wire of its own too.
  EXPECT_DOUBLE_EQ(p.s1->schedule_tied(500000, 0.25), 0.8);
}

TEST(LinkEmulator, TiedGradientArrivesAtTheStampedTimeBitwiseIntact) {
  Pair p({8.0, 50.0});
  // 250000 floats = 10^6 bytes: 1 s on the wire. Values that a lossy path would change.
  std::vector<float> a(250000), b(250000, 0.0f), c(250000, 0.0f);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 1.0f / static_cast<float>(i + 3) - 1e-7f * static_cast<float>(i);
  p.now = 0.3;
  p.s0->send_tied(a.data(), a.size());  // stamped at 0.3 by the sender: arrives at 0.3 + 1 + 0.05
  p.now = 0.5;
  p.s1->send_tied(a.data(), a.size());  // the other direction, stamped at 0.5: arrives at 1.55
  p.now = 0.6;
  p.s1->recv_tied(b.data(), b.size());
  ASSERT_EQ(p.clock1->sleeps.size(), 1u);
  EXPECT_DOUBLE_EQ(p.clock1->sleeps[0], 1.35);
  EXPECT_DOUBLE_EQ(p.now, 1.35);
  p.s0->recv_tied(c.data(), c.size());
  ASSERT_EQ(p.clock0->sleeps.size(), 1u);
  EXPECT_DOUBLE_EQ(p.clock0->sleeps[0], 1.55);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(a.data(), c.data(), a.size() * sizeof(float)));
  // Counted as tied bytes, not as boundary traffic (the arrival stamp is not counted).
  EXPECT_EQ(p.s0->stats().tied_bytes, 1000000u);
  EXPECT_EQ(p.s0->stats().total_bytes(Direction::forward), 0u);
  EXPECT_EQ(p.s0->stats().total_messages(Direction::forward), 0u);
}

TEST(LinkEmulator, TiedWireLinksTheFirstAndTheLastOfFourStages) {
  auto local = make_local_transports(4);
  double now = 0.0;
  std::vector<std::unique_ptr<LinkEmulator>> s;
  for (auto& t : local) s.push_back(std::make_unique<LinkEmulator>(std::move(t), LinkConfig{8.0, 10.0},
                                                                   std::make_unique<FakeClock>(&now)));
  std::vector<float> a(2500, 1.5f), b(2500);  // 10^4 bytes: 10 ms at 8 Mbit/s
  now = 1.0;
  s[3]->send_tied(a.data(), a.size());  // stage 3 -> stage 0 directly, one hop: 1.0 + 0.01 + 0.01
  s[0]->recv_tied(b.data(), b.size());
  EXPECT_DOUBLE_EQ(now, 1.02);
  EXPECT_EQ(b, a);
  // The middle stages hold no tied weight.
  EXPECT_DEATH(s[1]->schedule_tied(10, 0.0), "no tied-weight wire");
  // Stage 0 owns the hub of the local queues: destroy the others first.
  for (int i = 3; i >= 0; --i) s[i].reset();
}

TEST(LinkEmulatorDeathTest, NoWireBeyondTheEnds) {
  Pair p({8.0, 0.0});
  EXPECT_DEATH(p.s0->schedule(3, 10, 0.0), "no wire to stage 3");
}

// A transport that says it carries device memory (as NcclTransport does), over local queues.
class DeviceCapableLocal : public Transport {
 public:
  explicit DeviceCapableLocal(std::unique_ptr<Transport> inner) : Transport(inner->stage(), inner->num_stages()),
                                                                   inner_(std::move(inner)) {}
  bool carries_device_memory() const override { return true; }
  void allgather(const double* mine, int count, double* all) override { inner_->allgather(mine, count, all); }
  void send_raw(int peer, int tag, const void* data, size_t bytes) override {
    inner_->send_raw(peer, tag, data, bytes);
  }
  void recv_raw(int peer, int tag, void* data, size_t bytes) override { inner_->recv_raw(peer, tag, data, bytes); }
  bool probe_raw(int peer, int tag) override { return inner_->probe_raw(peer, tag); }

 private:
  std::unique_ptr<Transport> inner_;
};

// The stage runner hands a transport device memory only when it says it carries it: the emulator answers for the
// transport it wraps (host-only local queues: no; a device-capable transport: yes), since the payload passes through.
TEST(LinkEmulator, CarriesDeviceMemoryAsItsInnerTransport) {
  auto local = make_local_transports(2);
  EXPECT_FALSE(local[0]->carries_device_memory());
  LinkEmulator host_only(std::move(local[0]), {8.0, 1.0});
  EXPECT_FALSE(host_only.carries_device_memory());
  LinkEmulator device(std::make_unique<DeviceCapableLocal>(std::move(local[1])), {8.0, 1.0});
  EXPECT_TRUE(device.carries_device_memory());
}

// Three stages over local queues, each wrapped in a node-mode emulator sharing one fake time.
struct Trio {
  double now = 0.0;
  std::vector<FakeClock*> clocks;
  std::vector<std::unique_ptr<LinkEmulator>> s;
  explicit Trio(LinkConfig link) {
    link.mode = LinkMode::node;
    auto local = make_local_transports(3);
    for (auto& t : local) {
      auto c = std::make_unique<FakeClock>(&now);
      clocks.push_back(c.get());
      s.push_back(std::make_unique<LinkEmulator>(std::move(t), link, std::move(c)));
    }
  }
};

// node mode: stage 1's one downlink carries the code from stage 0 and the gradient from stage 2. 8 Mbit/s: 10^6
// bytes hold a wire 1 s; latency 50 ms. Stage 0 sends at 0 (its uplink [0,1]), stage 2 at 0.5 (its uplink
// [0.5,1.5]); stage 1's downlink takes them in order of departure: the code [0,1] arrives 1.05, the gradient
// [max(0.5, 1), 2] arrives 2.05, even though stage 1 asks for the gradient first. (boundary mode: 1.05 and 1.55.)
TEST(LinkEmulator, NodeModeSharesTheDownlinkInOrderOfDeparture) {
  Trio t({8.0, 50.0});
  std::vector<char> payload(1000000, 'x'), got(1000000);
  t.s[0]->send(Direction::forward, 0, payload.data(), payload.size());
  t.now = 0.5;
  t.s[2]->send(Direction::backward, 0, payload.data(), payload.size());
  t.s[1]->recv(Direction::backward, 0, got.data(), got.size());
  EXPECT_DOUBLE_EQ(t.now, 2.05);
  t.s[1]->recv(Direction::forward, 0, got.data(), got.size());
  ASSERT_EQ(t.clocks[1]->sleeps.size(), 2u);
  EXPECT_DOUBLE_EQ(t.clocks[1]->sleeps[0], 2.05);
  EXPECT_DOUBLE_EQ(t.clocks[1]->sleeps[1], 1.05);  // arrived long ago: no wait
  EXPECT_EQ(got, payload);
}

// node mode: stage 1's one uplink carries its code to stage 2 and its gradient to stage 0, one after the other:
// both sent at 0, the second leaves at 1 and arrives 2.05 (boundary mode: both 1.05, on wires of their own).
TEST(LinkEmulator, NodeModeSharesTheUplink) {
  Trio t({8.0, 50.0});
  std::vector<char> payload(1000000, 'y'), got(1000000);
  t.s[1]->send(Direction::forward, 0, payload.data(), payload.size());
  t.s[1]->send(Direction::backward, 0, payload.data(), payload.size());
  t.s[2]->recv(Direction::forward, 0, got.data(), got.size());
  t.s[0]->recv(Direction::backward, 0, got.data(), got.size());
  EXPECT_DOUBLE_EQ(t.clocks[2]->sleeps.at(0), 1.05);
  EXPECT_DOUBLE_EQ(t.clocks[0]->sleeps.at(0), 2.05);
  EXPECT_EQ(got, payload);
}

}  // namespace
}  // namespace engine::comm

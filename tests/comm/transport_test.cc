// Tests of LocalTransport and the counting in Transport: per-boundary, per-direction byte and message counts,
// FIFO per tag, readiness, the tied exchange, size-mismatch errors; and WireStats' flattening.
#include <cstring>
#include <vector>

#include "engine/comm/local_transport.h"
#include "gtest/gtest.h"

namespace engine::comm {
namespace {

TEST(LocalTransport, CountsBytesPerBoundaryAndDirection) {
  auto t = make_local_transports(3);  // boundaries 0 (stages 0-1) and 1 (stages 1-2)
  std::vector<float> a(10, 1.0f), b(7, 2.0f), out(10);
  t[0]->send(Direction::forward, 0, a.data(), 40);   // boundary 0 forward
  t[1]->send(Direction::forward, 0, b.data(), 28);   // boundary 1 forward
  t[1]->send(Direction::backward, 0, b.data(), 28);  // boundary 0 backward
  t[2]->send(Direction::backward, 3, a.data(), 40);  // boundary 1 backward
  t[2]->send(Direction::backward, 3, a.data(), 40);
  EXPECT_EQ(t[0]->stats().bytes[0], (std::vector<uint64_t>{40, 0}));
  EXPECT_EQ(t[1]->stats().bytes[0], (std::vector<uint64_t>{0, 28}));
  EXPECT_EQ(t[1]->stats().bytes[1], (std::vector<uint64_t>{28, 0}));
  EXPECT_EQ(t[2]->stats().bytes[1], (std::vector<uint64_t>{0, 80}));
  EXPECT_EQ(t[2]->stats().messages[1], (std::vector<uint64_t>{0, 2}));

  WireStats sum(2);
  for (auto& tr : t) sum.add(tr->stats());
  EXPECT_EQ(sum.total_bytes(Direction::forward), 68u);
  EXPECT_EQ(sum.total_bytes(Direction::backward), 108u);
  EXPECT_EQ(sum.total_messages(Direction::backward), 3u);

  // Receivers see what was sent, from the right neighbour; readiness follows.
  EXPECT_TRUE(t[1]->ready(Direction::forward, 0));
  EXPECT_FALSE(t[1]->ready(Direction::forward, 1));
  t[1]->recv(Direction::forward, 0, out.data(), 40);
  EXPECT_EQ(out[9], 1.0f);
  EXPECT_FALSE(t[1]->ready(Direction::forward, 0));
  t[0]->recv(Direction::backward, 0, out.data(), 28);
  EXPECT_EQ(out[0], 2.0f);
  // Receiving counts nothing: only senders count, so summing the stages counts each message once.
  EXPECT_EQ(t[1]->stats().bytes[0], (std::vector<uint64_t>{0, 28}));
  t[1]->clear_stats();
  EXPECT_EQ(t[1]->stats().total_bytes(Direction::forward), 0u);
}

TEST(LocalTransport, FifoPerTag) {
  auto t = make_local_transports(2);
  for (int i = 0; i < 5; ++i) {
    const int value = 100 + i;
    t[0]->send(Direction::forward, i % 2, &value, sizeof(value));
  }
  int got = 0;
  t[1]->recv(Direction::forward, 1, &got, sizeof(got));
  EXPECT_EQ(got, 101);
  t[1]->recv(Direction::forward, 0, &got, sizeof(got));
  EXPECT_EQ(got, 100);
  t[1]->recv(Direction::forward, 0, &got, sizeof(got));
  EXPECT_EQ(got, 102);
  t[1]->recv(Direction::forward, 1, &got, sizeof(got));
  EXPECT_EQ(got, 103);
}

TEST(LocalTransport, TiedExchangeBetweenFirstAndLast) {
  auto t = make_local_transports(4);
  std::vector<float> first = {1, 2, 3}, last = {10, 20, 30}, got_first(3), got_last(3);
  t[0]->send_tied(first.data(), 3);
  t[3]->send_tied(last.data(), 3);
  t[0]->recv_tied(got_first.data(), 3);
  t[3]->recv_tied(got_last.data(), 3);
  EXPECT_EQ(got_first, last);
  EXPECT_EQ(got_last, first);
  EXPECT_EQ(t[0]->stats().tied_bytes, 12u);
  EXPECT_EQ(t[0]->stats().total_bytes(Direction::forward), 0u) << "tied bytes are not boundary traffic";
}

TEST(LocalTransportDeathTest, MismatchedSizeAndMissingMessageAreFatal) {
  auto t = make_local_transports(2);
  float x[4] = {0};
  t[0]->send(Direction::forward, 0, x, 16);
  EXPECT_DEATH(t[1]->recv(Direction::forward, 0, x, 8), "expected 8 bytes from stage 0");
  EXPECT_DEATH(t[0]->recv(Direction::backward, 2, x, 8), "never sent");
  EXPECT_DEATH(t[0]->send(Direction::backward, 0, x, 8), "no backward neighbour");
}

TEST(WireStats, DoublesRoundTrip) {
  WireStats a(3);
  a.bytes[0] = {1, 2, 3};
  a.bytes[1] = {4, 5, 6};
  a.messages[0] = {7, 8, 9};
  a.messages[1] = {10, 11, 12};
  a.tied_bytes = 1ull << 40;
  std::vector<double> flat(a.num_doubles());
  a.to_doubles(flat.data());
  WireStats b(3);
  b.add_doubles(flat.data());
  b.add_doubles(flat.data());
  EXPECT_EQ(b.bytes[1], (std::vector<uint64_t>{8, 10, 12}));
  EXPECT_EQ(b.messages[0], (std::vector<uint64_t>{14, 16, 18}));
  EXPECT_EQ(b.tied_bytes, 2ull << 40);
}

}  // namespace
}  // namespace engine::comm

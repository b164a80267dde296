// Tests of the stage partition and of the GPipe / 1F1B action orders: every micro-batch's forward precedes its
// backward, backwards run in order 0..M-1, the number in flight never exceeds max_in_flight, and 1F1B's warm-up.
#include <set>
#include <stdexcept>

#include "engine/pipeline/pipeline.h"
#include "gtest/gtest.h"

namespace engine::pipeline {
namespace {

TEST(Partition, EvenAndExplicit) {
  EXPECT_EQ(partition_layers(12, 4, {}), (std::vector<int>{0, 3, 6, 9, 12}));
  EXPECT_EQ(partition_layers(10, 4, {}), (std::vector<int>{0, 3, 6, 8, 10}));  // first L % S stages get one more
  EXPECT_EQ(partition_layers(4, 1, {}), (std::vector<int>{0, 4}));
  EXPECT_EQ(partition_layers(12, 3, {2, 9}), (std::vector<int>{0, 2, 9, 12}));
  EXPECT_THROW(partition_layers(4, 5, {}), std::invalid_argument);
  EXPECT_THROW(partition_layers(12, 3, {5, 5}), std::invalid_argument);
  EXPECT_THROW(partition_layers(12, 3, {5}), std::invalid_argument);
  EXPECT_THROW(partition_layers(12, 2, {12}), std::invalid_argument);
  EXPECT_EQ(parse_boundaries("3,6,9"), (std::vector<int>{3, 6, 9}));
  EXPECT_THROW(parse_boundaries("3,x"), std::invalid_argument);
}

void check_schedule(Schedule sched, int S, int M) {
  for (int s = 0; s < S; ++s) {
    SCOPED_TRACE("stage " + std::to_string(s) + " of " + std::to_string(S) + ", M " + std::to_string(M));
    const std::vector<Action> actions = make_schedule(sched, s, S, M);
    ASSERT_EQ(actions.size(), static_cast<size_t>(2 * M));
    std::set<int> forwarded;
    int next_forward = 0, next_backward = 0, in_flight = 0, peak = 0;
    for (const Action& a : actions) {
      if (a.kind == Action::forward) {
        EXPECT_EQ(a.micro_batch, next_forward++);
        forwarded.insert(a.micro_batch);
        peak = std::max(peak, ++in_flight);
      } else {
        EXPECT_EQ(a.micro_batch, next_backward++) << "backwards must run in micro-batch order";
        EXPECT_TRUE(forwarded.count(a.micro_batch)) << "backward before forward";
        --in_flight;
      }
    }
    EXPECT_EQ(peak, max_in_flight(sched, s, S, M));
  }
}

TEST(Schedules, OrderAndMemory) {
  for (int S : {1, 2, 3, 4}) {
    for (int M : {1, 2, 4, 7}) {
      check_schedule(Schedule::gpipe, S, M);
      check_schedule(Schedule::one_f_one_b, S, M);
    }
  }
}

TEST(Schedules, OneFOneBShape) {
  // Stage 0 of 4 with M = 6: three warm-up forwards, then F3 B0 F4 B1 F5 B2, then B3 B4 B5.
  const std::vector<Action> a = make_schedule(Schedule::one_f_one_b, 0, 4, 6);
  std::string s;
  for (const Action& x : a) s += (x.kind == Action::forward ? "F" : "B") + std::to_string(x.micro_batch) + " ";
  EXPECT_EQ(s, "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5 ");
  // The last stage alternates from the start.
  s.clear();
  for (const Action& x : make_schedule(Schedule::one_f_one_b, 3, 4, 3)) {
    s += (x.kind == Action::forward ? "F" : "B") + std::to_string(x.micro_batch) + " ";
  }
  EXPECT_EQ(s, "F0 B0 F1 B1 F2 B2 ");
  EXPECT_EQ(parse_schedule("1f1b"), Schedule::one_f_one_b);
  EXPECT_THROW(parse_schedule("zb"), std::invalid_argument);
}

}  // namespace
}  // namespace engine::pipeline

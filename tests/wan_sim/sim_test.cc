// Tests of tools/wan_sim's simulate() against timelines computed by hand. Throughout: 8 Mbit/s, so a message of
// 10^6 bytes holds a wire exactly 1 s; compute is given per step and a micro-batch takes 1/M of it.
#include "tools/wan_sim/sim.h"

#include "gtest/gtest.h"

namespace wan_sim {
namespace {

using engine::comm::LinkMode;
using engine::pipeline::Schedule;

// S stages, each forward f s and backward b s per micro-batch at M micro-batches; every boundary message (code or
// gradient) `message_bytes`.
Workload uniform(int S, int M, double f, double b, double message_bytes) {
  Workload w;
  w.stages = S;
  w.compute.assign(S, {f * M, b * M, 0.0});
  w.code_bytes.assign(S - 1, message_bytes * M);
  w.grad_bytes.assign(S - 1, message_bytes * M);
  return w;
}

Links links(LinkMode mode, double mbps, double latency_ms) { return {mode, mbps, mbps, latency_ms}; }

// S=2, M=2, GPipe, f=1, b=2, latency 0.5 s, infinite rate:
//   stage 0: F0 [0,1] (code0 arrives 1.5), F1 [1,2] (arrives 2.5)
//   stage 1: F0 [1.5,2.5], F1 [2.5,3.5], B0 [3.5,5.5] (grad0 arrives 6), B1 [5.5,7.5] (grad1 arrives 8)
//   stage 0: B0 [6,8], B1 [8,10]                                                           -> step 10 s
// stage 0: busy 6, waiting 4 (2..6), idle 0; stage 1: busy 6, waiting 1.5 (0..1.5), idle 2.5 (7.5..10).
// At S = 2 each node has one peer, so node mode charges the same wires: the same timeline.
TEST(WanSim, LatencyOnlyTwoStagesBothModes) {
  for (LinkMode mode : {LinkMode::boundary, LinkMode::node}) {
    const SimResult r = simulate(uniform(2, 2, 1.0, 2.0, 1e6), 2, Schedule::gpipe, links(mode, 0.0, 500.0));
    EXPECT_DOUBLE_EQ(r.step_s, 10.0) << link_mode_name(mode);
    EXPECT_DOUBLE_EQ(r.stages[0].busy_s, 6.0);
    EXPECT_DOUBLE_EQ(r.stages[0].waiting_s, 4.0);
    EXPECT_DOUBLE_EQ(r.stages[0].idle_s, 0.0);
    EXPECT_DOUBLE_EQ(r.stages[1].busy_s, 6.0);
    EXPECT_DOUBLE_EQ(r.stages[1].waiting_s, 1.5);
    EXPECT_DOUBLE_EQ(r.stages[1].idle_s, 2.5);
    for (const WireUse& w : r.wires) EXPECT_DOUBLE_EQ(w.busy_s, 0.0) << w.name;  // infinite rate
  }
}

// S=2, M=2, GPipe, f=1, b=2, 1 s per message, no latency:
//   stage 0: F0 [0,1] -> wire [1,2], arrives 2; F1 [1,2] -> wire [2,3], arrives 3
//   stage 1: F0 [2,3], F1 [3,4], B0 [4,6] -> wire [6,7], arrives 7; B1 [6,8] -> wire [8,9], arrives 9
//   stage 0: B0 [7,9], B1 [9,11]                                                            -> step 11 s
// Each direction's wire (boundary) or each node's up- and downlink (node) carries 2 messages: 2 s of 11.
TEST(WanSim, RateOnlyTwoStagesBothModes) {
  for (LinkMode mode : {LinkMode::boundary, LinkMode::node}) {
    const SimResult r = simulate(uniform(2, 2, 1.0, 2.0, 1e6), 2, Schedule::gpipe, links(mode, 8.0, 0.0));
    EXPECT_DOUBLE_EQ(r.step_s, 11.0) << link_mode_name(mode);
    EXPECT_DOUBLE_EQ(r.stages[0].waiting_s, 5.0);  // ready at 2, B0 starts at 7
    EXPECT_DOUBLE_EQ(r.stages[1].waiting_s, 2.0);  // F0 starts at 2
    EXPECT_DOUBLE_EQ(r.stages[1].idle_s, 3.0);     // done at 8
    ASSERT_EQ(r.wires.size(), mode == LinkMode::boundary ? 2u : 4u);
    for (const WireUse& w : r.wires) EXPECT_DOUBLE_EQ(w.busy_s, 2.0) << w.name;
  }
}

// Both: latency 0.5 s and 1 s per message, S=2, M=2, GPipe, f=1, b=2. Every message arrives 1.5 s after it could
// start, and no wire is ever asked for while busy (codes leave at 1 and 2: wire [1,2], [2,3]):
//   stage 0: F0 [0,1] code0 arrives 2.5; F1 [1,2] code1 arrives 3.5
//   stage 1: F0 [2.5,3.5], F1 [3.5,4.5], B0 [4.5,6.5] grad0 arrives 8; B1 [6.5,8.5] grad1 arrives 10
//   stage 0: B0 [8,10], B1 [10,12]                                                          -> step 12 s
TEST(WanSim, LatencyAndRateTwoStagesBothModes) {
  for (LinkMode mode : {LinkMode::boundary, LinkMode::node}) {
    const SimResult r = simulate(uniform(2, 2, 1.0, 2.0, 1e6), 2, Schedule::gpipe, links(mode, 8.0, 500.0));
    EXPECT_DOUBLE_EQ(r.step_s, 12.0) << link_mode_name(mode);
  }
}

// The order comes from engine::pipeline::make_schedule: at S=2, stage 1 runs F0 F1 B0 B1 under GPipe and
// F0 B0 F1 B1 under 1F1B (stage 0 runs F0 F1 B0 B1 under both). f=1, b=1, 2 s per message, no latency:
//   both:  stage 0: F0 [0,1] -> wire [1,3] arrives 3; F1 [1,2] -> wire [3,5] arrives 5
//   GPipe: stage 1: F0 [3,4], F1 [5,6], B0 [6,7] -> [7,9] arrives 9; B1 [7,8] -> [9,11] arrives 11
//          stage 0: B0 [9,10], B1 [11,12]                                                   -> step 12 s
//   1F1B:  stage 1: F0 [3,4], B0 [4,5] -> [5,7] arrives 7; F1 [5,6], B1 [6,7] -> [7,9] arrives 9
//          stage 0: B0 [7,8], B1 [9,10]                                                     -> step 10 s
TEST(WanSim, ScheduleOrderIsTheEngines) {
  const Workload w = uniform(2, 2, 1.0, 1.0, 2e6);
  EXPECT_DOUBLE_EQ(simulate(w, 2, Schedule::gpipe, links(LinkMode::boundary, 8.0, 0.0)).step_s, 12.0);
  const SimResult r = simulate(w, 2, Schedule::one_f_one_b, links(LinkMode::boundary, 8.0, 0.0));
  EXPECT_DOUBLE_EQ(r.step_s, 10.0);
  EXPECT_DOUBLE_EQ(r.stages[1].waiting_s, 3.0);  // F0 at 3; then every input is there when the stage is ready
  EXPECT_DOUBLE_EQ(r.stages[1].idle_s, 3.0);     // done at 7
}

// Where the modes differ: a node that receives from two peers. S=3, M=1, GPipe, f=1, b=1, 1 s per boundary
// message, a 3 s tied gradient (3*10^6 bytes) between stage 0 and stage 2, no latency.
//   both:     stage 0 F0 [0,1] -> arrives 2; stage 1 F0 [2,3] -> arrives 4; stage 2 F0 [4,5], B0 [5,6];
//             at 6 stage 2 sends grad0 to stage 1 (arrives 7) and its tied gradient to stage 0; stage 1 B0 [7,8]
//             sends grad0 to stage 0 at 8.
//   boundary: tied 2->0 on its own wire [6,9]; grad0 on 1->0 [8,9] arrives 9; stage 0 B0 [9,10]; its tied 0->2
//             [10,13] arrives 13                                                             -> step 13 s
//   node:     stage 2's uplink carries grad0 [6,7] then tied [7,10], which holds stage 0's downlink [7,10]; grad0
//             from stage 1 leaves at 8 but crosses stage 0's downlink only [10,11]; stage 0 B0 [11,12]; its tied
//             [12,15] arrives 15                                                              -> step 15 s
//   node stage use: stage 0 busy 2, waiting 10 (1..11), idle 3 (12..15); stage 2 busy 2, waiting 4 (0..4) + 9
//   (6..15, for the tied gradient), idle 0. Stage 0's downlink carried 3 + 1 s of the 15.
TEST(WanSim, NodeModeSharesTheInboundWire) {
  Workload w = uniform(3, 1, 1.0, 1.0, 1e6);
  w.tied_bytes = 3e6;
  EXPECT_DOUBLE_EQ(simulate(w, 1, Schedule::gpipe, links(LinkMode::boundary, 8.0, 0.0)).step_s, 13.0);
  const SimResult r = simulate(w, 1, Schedule::gpipe, links(LinkMode::node, 8.0, 0.0));
  EXPECT_DOUBLE_EQ(r.step_s, 15.0);
  EXPECT_DOUBLE_EQ(r.stages[0].busy_s, 2.0);
  EXPECT_DOUBLE_EQ(r.stages[0].waiting_s, 10.0);
  EXPECT_DOUBLE_EQ(r.stages[0].idle_s, 3.0);
  EXPECT_DOUBLE_EQ(r.stages[2].waiting_s, 13.0);
  EXPECT_DOUBLE_EQ(r.stages[2].idle_s, 0.0);
  ASSERT_EQ(r.wires[3].name, "stage 0 down");
  EXPECT_DOUBLE_EQ(r.wires[3].busy_s, 4.0);
}

// The update runs first in the step (the previous step's): it delays each stage's first action by its own time.
// S=2, M=1, no link: stage 0 update [0,1], F0 [1,2]; stage 1 update [0,3], F0 [3,4], B0 [4,5]; stage 0 B0 [5,6].
TEST(WanSim, UpdateStartsTheStep) {
  Workload w = uniform(2, 1, 1.0, 1.0, 0.0);
  w.compute[0].update_s = 1.0;
  w.compute[1].update_s = 3.0;
  const SimResult r = simulate(w, 1, Schedule::gpipe, links(LinkMode::boundary, 0.0, 0.0));
  EXPECT_DOUBLE_EQ(r.step_s, 6.0);
  EXPECT_DOUBLE_EQ(r.stages[0].busy_s, 3.0);
  EXPECT_DOUBLE_EQ(r.stages[0].waiting_s, 3.0);  // ready at 2, B0 at 5
}

TEST(WanSim, RefusesInconsistentInput) {
  Workload w = uniform(2, 1, 1.0, 1.0, 1.0);
  const Links l = links(LinkMode::boundary, 8.0, 0.0);
  EXPECT_THROW(simulate(w, 0, Schedule::gpipe, l), std::invalid_argument);
  w.replicas = 0;
  EXPECT_THROW(simulate(w, 1, Schedule::gpipe, l), std::invalid_argument);
  w.replicas = 2;
  w.dp_bytes = {1.0};  // one per stage needed
  EXPECT_THROW(simulate(w, 1, Schedule::gpipe, l), std::invalid_argument);
  w.dp_bytes = {1.0, 1.0};
  w.dp_every = 0;
  EXPECT_THROW(simulate(w, 1, Schedule::gpipe, l), std::invalid_argument);
  w.dp_every = 1;
  w.replicas = 1;
  w.code_bytes.clear();
  EXPECT_THROW(simulate(w, 1, Schedule::gpipe, l), std::invalid_argument);
}

// Replicas: S = 1, f = 0.1, b = 0.2, one replica's payload 10^6 bytes on an 8 Mbit/s data-parallel link with 10 ms
// latency: (R - 1) x 1 s + 0.01 s after the 0.3 s step. A sync every 4 steps adds a quarter of it per step.
TEST(WanSim, ReplicaSyncOnEachStagesOwnLink) {
  Workload w = uniform(1, 1, 0.1, 0.2, 0.0);
  Links l = links(LinkMode::boundary, 8.0, 0.0);
  l.dp_mbps = 8.0;
  l.dp_latency_ms = 10.0;
  w.replicas = 2;
  w.dp_bytes = {1e6};
  SimResult r = simulate(w, 1, Schedule::gpipe, l);
  EXPECT_NEAR(r.plain_step_s, 0.3, 1e-12);
  EXPECT_NEAR(r.stages[0].dp_s, 1.01, 1e-12);
  EXPECT_NEAR(r.sync_step_s, 1.31, 1e-12);
  EXPECT_NEAR(r.step_s, 1.31, 1e-12);
  w.replicas = 3;  // two payloads leave each node
  EXPECT_NEAR(simulate(w, 1, Schedule::gpipe, l).sync_step_s, 2.31, 1e-12);
  w.replicas = 2;
  w.dp_every = 4;
  r = simulate(w, 1, Schedule::gpipe, l);
  EXPECT_NEAR(r.step_s, 0.3 + 1.01 / 4, 1e-12);
  w.replicas = 1;  // no replicas: no sync, whatever the payload says
  EXPECT_NEAR(simulate(w, 1, Schedule::gpipe, l).step_s, 0.3, 1e-12);
}

// S = 2, M = 1, GPipe, f = b = 0.1 s, no boundary delay: stage 1 is done at 0.3 s (F0 [0,.1] on stage 0, F0 and B0
// [.1,.3] on stage 1), stage 0 at 0.4 s (B0 [.3,.4]). Stage 1's sync (2 MB: 2 s) starts earlier but ends later
// than stage 0's (0.5 MB: 0.5 s): the step ends at 2.3 s, each stage syncing on its own link.
TEST(WanSim, StagesSyncInParallel) {
  Workload w = uniform(2, 1, 0.1, 0.1, 0.0);
  Links l = links(LinkMode::boundary, 0.0, 0.0);
  l.dp_mbps = 8.0;
  w.replicas = 2;
  w.dp_bytes = {0.5e6, 2e6};
  const SimResult r = simulate(w, 1, Schedule::gpipe, l);
  EXPECT_NEAR(r.plain_step_s, 0.4, 1e-12);
  EXPECT_NEAR(r.sync_step_s, 2.3, 1e-12);
}

}  // namespace
}  // namespace wan_sim

// tools/wan_sim/sim.h: a discrete-event simulation of one pipeline-parallel training step over slow links.
//
// What it models, and the engine code it takes it from (so that the two cannot drift):
//   - each stage runs its forwards and backwards in the order of engine::pipeline::make_schedule (GPipe, 1F1B), one
//     at a time; an action starts when the stage is free and its input (the code from stage-1, or the gradient from
//     stage+1) has arrived; its output is sent when it ends;
//   - messages cross wires as engine/comm/link_model.h charges them (boundary or node mode), as the link emulator
//     does in real runs;
//   - after its last action, the first and the last stage send each other the tied-weight gradient (when there is
//     one) and wait for the other's; then every stage meets the others (the executor's summary exchange: a
//     barrier, taken as free), which ends the step;
//   - each stage's optimizer update runs first in the step, as the update of the previous one (which it is: the
//     period between two barriers holds one update per stage, whichever end it is drawn at).
//   - with R > 1 replicas (each on machines of its own, all running the same step at the same time), each stage
//     then syncs with its replicas over a data-parallel link of its own, as engine/pipeline/replicas.h emulates
//     it: every replica's payload gathered on every replica, (R - 1) payloads on each stage's link, so the stage
//     ends transmit_s((R - 1) payload, dp rate) + dp latency later. A sync every H steps (DiLoCo) adds that to one
//     step in H: step_s is the mean over the H steps.
// What it leaves out: the barrier's own cost, any slow-down of one stage's compute by another's (the inputs are
// each stage's measured or assumed compute times), a sync overlapping the next step's compute.
#pragma once

#include <string>
#include <vector>

#include "engine/comm/link_model.h"
#include "engine/pipeline/pipeline.h"

namespace wan_sim {

// One stage's compute for a whole step (all micro-batches), in seconds. A micro-batch takes 1/M of it.
struct StageCompute {
  double forward_s = 0.0;
  double backward_s = 0.0;
  double update_s = 0.0;
};

struct Links {
  engine::comm::LinkMode mode = engine::comm::LinkMode::boundary;
  double up_mbps = 0.0;    // every node's uplink (<= 0: infinite)
  double down_mbps = 0.0;  // every node's downlink; boundary mode uses min(up, down) per wire
  double latency_ms = 0.0; // one way, per message
  double dp_mbps = 0.0;    // each stage's data-parallel link to its replicas (<= 0: infinite)
  double dp_latency_ms = 0.0;
};

// A step's work, independent of how it is cut into micro-batches: per-step totals that M divides.
struct Workload {
  int stages = 1;                        // S
  int replicas = 1;                      // R: data-parallel copies of the pipeline
  std::vector<double> dp_bytes;          // S entries: one replica's sync payload per stage (empty: no sync)
  int dp_every = 1;                      // a sync every H steps (1: synchronous data parallelism)
  std::vector<StageCompute> compute;     // S entries
  std::vector<double> code_bytes;        // S-1 entries: bytes of the step's codes across boundary b (forward)
  std::vector<double> grad_bytes;        // S-1 entries: bytes of their gradients (backward)
  double tied_bytes = 0.0;               // the tied-weight gradient, each way (0: an untied head)
};

struct StageUse {
  double dp_s = 0.0;       // its sync on the data-parallel link (per sync)
  double busy_s = 0.0;     // computing (forward, backward, update)
  double waiting_s = 0.0;  // ready for its next action (or the tied gradient), its input not yet arrived
  double idle_s = 0.0;     // done with the step, waiting for the other stages
};

struct WireUse {
  std::string name;        // "stage 0 -> 1" (boundary mode), "stage 1 up" / "stage 1 down" (node mode)
  double busy_s = 0.0;     // seconds spent transmitting
};

struct SimResult {
  double step_s = 0.0;       // mean over a sync interval (the pipeline step alone without replicas)
  double plain_step_s = 0.0; // a step without a sync
  double sync_step_s = 0.0;  // a step that ends with a sync (= plain_step_s without replicas)
  std::vector<StageUse> stages;
  std::vector<WireUse> wires;
};

// Simulates one step of `work` cut into M micro-batches under `schedule` over `links`. Throws
// std::invalid_argument for inconsistent input (sizes that do not match S, M < 1, R < 1, H < 1, negative times).
SimResult simulate(const Workload& work, int micro_batches, engine::pipeline::Schedule schedule, const Links& links);

}  // namespace wan_sim

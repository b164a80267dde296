// tools/wan_sim/sim.cc: the event loop of simulate(): stages, messages and wires, in time order.
#include "tools/wan_sim/sim.h"

#include <algorithm>
#include <set>
#include <queue>
#include <stdexcept>
#include <tuple>

namespace wan_sim {

using engine::comm::LinkMode;
using engine::pipeline::Action;

namespace {

// What a message carries, which is also how its receiver asks for it.
enum Kind { kCode = 0, kGrad = 1, kTied = 2 };

struct Message {
  int from = 0, to = 0;
  Kind kind = kCode;
  int micro_batch = 0;
  double bytes = 0.0;
  double depart = 0.0, out_end = 0.0;  // node mode: when it left the sender's uplink, and finished there
};

// Events happen in time order; equal times in the order they were made (deterministic).
struct Event {
  enum Type { try_run, action_done, send, depart, arrive } type;
  double time;
  long seq;
  int stage;        // try_run, action_done
  int message;      // send, depart, arrive: index into messages
};
struct Later {
  bool operator()(const Event& a, const Event& b) const {
    return std::tie(a.time, a.seq) > std::tie(b.time, b.seq);
  }
};

struct Stage {
  std::vector<Action> actions;
  size_t next = 0;
  bool running = false;
  double ready_since = 0.0;   // when it became free for its next action
  double done = -1.0;         // when it finished the step (its last action, and the tied gradient's arrival)
  bool wants_tied = false;    // has sent its tied gradient, waits for the other's
};

class Simulation {
 public:
  Simulation(const Workload& work, int M, engine::pipeline::Schedule schedule, const Links& links)
      : work_(work), M_(M), links_(links), S_(work.stages) {
    stages_.resize(S_);
    result_.stages.resize(S_);
    for (int s = 0; s < S_; ++s) stages_[s].actions = engine::pipeline::make_schedule(schedule, s, S_, M);
    if (links.mode == LinkMode::boundary) {
      // [0, S-1): forward wires s -> s+1; [S-1, 2(S-1)): backward wires s+1 -> s; then the two tied wires.
      for (int b = 0; b < S_ - 1; ++b) add_wire("stage " + std::to_string(b) + " -> " + std::to_string(b + 1));
      for (int b = 0; b < S_ - 1; ++b) add_wire("stage " + std::to_string(b + 1) + " -> " + std::to_string(b));
      if (has_tied()) {
        add_wire("tied stage 0 -> " + std::to_string(S_ - 1));
        add_wire("tied stage " + std::to_string(S_ - 1) + " -> 0");
      }
    } else {
      for (int s = 0; s < S_; ++s) add_wire("stage " + std::to_string(s) + " up");
      for (int s = 0; s < S_; ++s) add_wire("stage " + std::to_string(s) + " down");
    }
  }

  SimResult run() {
    // Each stage starts with its update (the previous step's, see sim.h), then asks for its first action.
    for (int s = 0; s < S_; ++s) {
      const double u = work_.compute[s].update_s;
      result_.stages[s].busy_s += u;
      stages_[s].ready_since = u;
      push(Event::try_run, u, s, -1);
    }
    while (!events_.empty()) {
      const Event e = events_.top();
      events_.pop();
      switch (e.type) {
        case Event::try_run: try_run(e.stage, e.time); break;
        case Event::action_done: action_done(e.stage, e.time); break;
        case Event::send: send(e.message, e.time); break;
        case Event::depart: depart(e.message, e.time); break;
        case Event::arrive: arrive(e.message, e.time); break;
      }
    }
    for (int s = 0; s < S_; ++s) {
      if (stages_[s].done < 0) throw std::logic_error("wan_sim: stage " + std::to_string(s) + " never finished");
      result_.step_s = std::max(result_.step_s, stages_[s].done);
    }
    for (int s = 0; s < S_; ++s) result_.stages[s].idle_s = result_.step_s - stages_[s].done;
    return result_;
  }

 private:
  bool has_tied() const { return S_ > 1 && work_.tied_bytes > 0.0; }

  void add_wire(const std::string& name) {
    result_.wires.push_back({name, 0.0});
    wire_free_.push_back(0.0);
  }

  void push(Event::Type type, double time, int stage, int message) {
    events_.push({type, time, seq_++, stage, message});
  }

  double compute_s(int s, const Action& a) const {
    const StageCompute& c = work_.compute[s];
    return (a.kind == Action::forward ? c.forward_s : c.backward_s) / M_;
  }

  // The message an action needs before it can start, as (from, kind, micro-batch); from = -1: none.
  std::tuple<int, int, int> input_of(int s, const Action& a) const {
    if (a.kind == Action::forward) return {s == 0 ? -1 : s - 1, kCode, a.micro_batch};
    return {s == S_ - 1 ? -1 : s + 1, kGrad, a.micro_batch};
  }

  void try_run(int s, double now) {
    Stage& st = stages_[s];
    // Busy, done, or still in its update (an input that arrives then waits for the try_run at ready_since).
    if (st.running || st.next >= st.actions.size() || now < st.ready_since) return;
    const Action& a = st.actions[st.next];
    const auto need = input_of(s, a);
    if (std::get<0>(need) >= 0 && !arrived_.count(std::make_tuple(s, std::get<0>(need), std::get<1>(need),
                                                                   std::get<2>(need)))) {
      return;  // woken by its arrival
    }
    result_.stages[s].waiting_s += now - st.ready_since;
    const double d = compute_s(s, a);
    result_.stages[s].busy_s += d;
    st.running = true;
    push(Event::action_done, now + d, s, -1);
  }

  void action_done(int s, double now) {
    Stage& st = stages_[s];
    const Action a = st.actions[st.next++];
    st.running = false;
    st.ready_since = now;
    if (a.kind == Action::forward && s < S_ - 1) {
      new_message(s, s + 1, kCode, a.micro_batch, work_.code_bytes[s] / M_, now);
    } else if (a.kind == Action::backward && s > 0) {
      new_message(s, s - 1, kGrad, a.micro_batch, work_.grad_bytes[s - 1] / M_, now);
    }
    if (st.next < st.actions.size()) {
      push(Event::try_run, now, s, -1);
      return;
    }
    if (has_tied() && (s == 0 || s == S_ - 1)) {
      new_message(s, s == 0 ? S_ - 1 : 0, kTied, 0, work_.tied_bytes, now);
      st.wants_tied = true;
      finish_if_tied_here(s, now);
      return;
    }
    st.done = now;
  }

  void finish_if_tied_here(int s, double now) {
    Stage& st = stages_[s];
    const int peer = s == 0 ? S_ - 1 : 0;
    if (!st.wants_tied || !arrived_.count(std::make_tuple(s, peer, static_cast<int>(kTied), 0))) return;
    result_.stages[s].waiting_s += now - st.ready_since;
    st.wants_tied = false;
    st.done = now;
  }

  void new_message(int from, int to, Kind kind, int m, double bytes, double now) {
    Message msg;
    msg.from = from;
    msg.to = to;
    msg.kind = kind;
    msg.micro_batch = m;
    msg.bytes = bytes;
    messages_.push_back(msg);
    push(Event::send, now, -1, static_cast<int>(messages_.size()) - 1);
  }

  double seconds_on(double bytes, double mbps) const {
    return engine::comm::transmit_s(static_cast<size_t>(bytes + 0.5), mbps);
  }
  double boundary_mbps() const {
    if (links_.up_mbps <= 0.0) return links_.down_mbps;
    if (links_.down_mbps <= 0.0) return links_.up_mbps;
    return std::min(links_.up_mbps, links_.down_mbps);
  }

  // Boundary mode: the sender's wire to the receiver, the whole charge at once. Node mode: the sender's uplink
  // now, the receiver's downlink when the message departs (downlinks take messages in order of departure).
  void send(int i, double now) {
    Message& msg = messages_[i];
    const double latency = links_.latency_ms * 1e-3;
    if (links_.mode == LinkMode::boundary) {
      const int w = boundary_wire(msg);
      const double x = seconds_on(msg.bytes, boundary_mbps());
      result_.wires[w].busy_s += x;
      push(Event::arrive, engine::comm::occupy_wire(wire_free_[w], now, x) + latency, -1, i);
      return;
    }
    const double x = seconds_on(msg.bytes, links_.up_mbps);
    result_.wires[msg.from].busy_s += x;
    msg.out_end = engine::comm::occupy_wire(wire_free_[msg.from], now, x);
    msg.depart = msg.out_end - x;
    push(Event::depart, msg.depart, -1, i);
  }

  void depart(int i, double) {
    const Message& msg = messages_[i];
    const int w = S_ + msg.to;
    const double x = seconds_on(msg.bytes, links_.down_mbps);
    result_.wires[w].busy_s += x;
    const double end = engine::comm::cross_inbound(wire_free_[w], msg.depart, msg.out_end, x);
    push(Event::arrive, end + links_.latency_ms * 1e-3, -1, i);
  }

  int boundary_wire(const Message& msg) const {
    if (msg.kind == kCode) return msg.from;                   // forward wire of boundary `from`
    if (msg.kind == kGrad) return (S_ - 1) + msg.to;           // backward wire of boundary `to`
    return 2 * (S_ - 1) + (msg.from == 0 ? 0 : 1);             // tied wires
  }

  void arrive(int i, double now) {
    const Message& msg = messages_[i];
    arrived_.insert(std::make_tuple(msg.to, msg.from, static_cast<int>(msg.kind), msg.micro_batch));
    if (msg.kind == kTied) {
      finish_if_tied_here(msg.to, now);
    } else {
      try_run(msg.to, now);
    }
  }

  const Workload& work_;
  const int M_;
  const Links links_;
  const int S_;
  std::vector<Stage> stages_;
  std::vector<Message> messages_;
  std::vector<double> wire_free_;
  // (receiver, sender, kind, micro-batch) of every message that has arrived
  std::set<std::tuple<int, int, int, int>> arrived_;
  std::priority_queue<Event, std::vector<Event>, Later> events_;
  long seq_ = 0;
  SimResult result_;
};

void check(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

}  // namespace

SimResult simulate(const Workload& work, int micro_batches, engine::pipeline::Schedule schedule, const Links& links) {
  const int S = work.stages;
  check(S >= 1, "stages must be >= 1, got " + std::to_string(S));
  check(work.replicas >= 1, "replicas must be >= 1, got " + std::to_string(work.replicas));
  check(work.dp_every >= 1, "a sync every H steps needs H >= 1, got " + std::to_string(work.dp_every));
  check(work.dp_bytes.empty() || static_cast<int>(work.dp_bytes.size()) == S,
        "sync payloads: one per stage (" + std::to_string(S) + ") needed, got " + std::to_string(work.dp_bytes.size()));
  for (double b : work.dp_bytes) check(b >= 0, "sync payloads must be >= 0");
  check(links.dp_latency_ms >= 0, "the data-parallel latency must be >= 0");
  check(micro_batches >= 1, "micro-batches must be >= 1, got " + std::to_string(micro_batches));
  check(static_cast<int>(work.compute.size()) == S, "compute times: " + std::to_string(work.compute.size()) +
                                                        " stages given for " + std::to_string(S));
  check(static_cast<int>(work.code_bytes.size()) == S - 1 && static_cast<int>(work.grad_bytes.size()) == S - 1,
        "message sizes: one per boundary (" + std::to_string(S - 1) + ") needed");
  for (const StageCompute& c : work.compute) {
    check(c.forward_s >= 0 && c.backward_s >= 0 && c.update_s >= 0, "compute times must be >= 0");
  }
  check(links.latency_ms >= 0, "latency must be >= 0");
  SimResult res = Simulation(work, micro_batches, schedule, links).run();
  res.plain_step_s = res.sync_step_s = res.step_s;
  if (work.replicas > 1 && !work.dp_bytes.empty()) {
    // Each stage syncs once it is done with the step, on its own link; the step ends when the last one has.
    double end = 0.0;
    for (int s = 0; s < S; ++s) {
      StageUse& use = res.stages[s];
      use.dp_s = engine::comm::transmit_s(static_cast<size_t>((work.replicas - 1) * work.dp_bytes[s]), links.dp_mbps) +
                 links.dp_latency_ms * 1e-3;
      end = std::max(end, res.step_s - use.idle_s + use.dp_s);  // step_s - idle_s: when stage s was done
    }
    res.sync_step_s = std::max(res.plain_step_s, end);
    res.step_s = res.plain_step_s + (res.sync_step_s - res.plain_step_s) / work.dp_every;
  }
  return res;
}

}  // namespace wan_sim

// tests/kernels/cuda/cuda_emulation.cc: the running block of cuda_emulation.h, its threads as fibers (ucontext) on
// the caller's OS thread, their barriers and the deterministic schedule described in the header.
#include "tests/kernels/cuda/cuda_emulation.h"

#include <sys/mman.h>
#include <ucontext.h>

#include <deque>

namespace cuda_emulation {

namespace {

constexpr size_t kStackBytes = 512 * 1024;  // per thread; the kernels' locals (flash: a few KiB of fragments)
constexpr size_t kPageBytes = 4096;

struct Fiber {
  ucontext_t context;
  char* stack = nullptr;  // kStackBytes, its lowest page inaccessible (an overflow faults instead of corrupting)
  dim3 idx;
  size_t shared_top = kSharedBytes;
  int waiting_at = -1;  // the barrier group it waits at, or -1
  bool done = false;
};

struct Group {  // a barrier: the block's, or one warp's
  int live = 0;                // threads that have not exited
  std::vector<int> waiting;    // in arrival order
};

struct Scheduler {
  ucontext_t main;
  std::vector<Fiber> fibers;  // grows to the largest block seen; stacks kept
  Group groups[kMaxWarps + 1];
  std::deque<int> runnable;
  int current = -1;
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
};

Scheduler& scheduler() {
  static Scheduler* s = new Scheduler;  // never freed: fibers' stacks live as long as the process
  return *s;
}

// The released threads run next, in their arrival order (which follows the block's order).
void release(Group& g, int except) {
  Scheduler& s = scheduler();
  for (auto it = g.waiting.rbegin(); it != g.waiting.rend(); ++it) {
    if (*it == except) continue;
    s.fibers[*it].waiting_at = -1;
    s.runnable.push_front(*it);
  }
  g.waiting.clear();
}

void fiber_main() {
  Scheduler& s = scheduler();
  const int t = s.current;
  s.body(s.arg);
  Fiber& f = s.fibers[t];
  f.done = true;
  for (int group : {t / 32, kBlockGroup}) {  // leave the barriers
    Group& g = s.groups[group];
    if (--g.live > 0 && static_cast<int>(g.waiting.size()) == g.live) release(g, -1);
  }
  swapcontext(&f.context, &s.main);  // never resumed
}

}  // namespace

BlockState& block_state() {
  static BlockState* state = new BlockState;  // 256 KiB of shared memory: on the heap, never freed
  return *state;
}

dim3& thread_idx() {
  Scheduler& s = scheduler();
  return s.fibers[s.current].idx;
}

size_t& static_shared_top() {
  Scheduler& s = scheduler();
  return s.fibers[s.current].shared_top;
}

void barrier_wait(int group) {
  Scheduler& s = scheduler();
  const int t = s.current;
  Group& g = s.groups[group];
  g.waiting.push_back(t);
  if (static_cast<int>(g.waiting.size()) == g.live) {  // the last to arrive goes on; the others run next
    release(g, t);
    return;
  }
  s.fibers[t].waiting_at = group;
  swapcontext(&s.fibers[t].context, &s.main);
}

void run_block(int threads, bool reverse, void (*body)(void*), void* arg) {
  Scheduler& s = scheduler();
  while (static_cast<int>(s.fibers.size()) < threads) {
    Fiber f;
    void* mem = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED || mprotect(mem, kPageBytes, PROT_NONE) != 0) {
      std::fprintf(stderr, "cuda_emulation: cannot map a %zu-byte fiber stack\n", kStackBytes);
      std::abort();
    }
    f.stack = static_cast<char*>(mem);
    s.fibers.push_back(f);
  }
  s.body = body;
  s.arg = arg;
  for (int w = 0; w < kMaxWarps; w++) s.groups[w] = Group{w < threads / 32 ? 32 : 0, {}};
  s.groups[kBlockGroup] = Group{threads, {}};
  s.runnable.clear();
  for (int i = 0; i < threads; i++) {
    const int t = reverse ? threads - 1 - i : i;
    Fiber& f = s.fibers[t];
    f.idx = dim3(t);
    f.shared_top = kSharedBytes;
    f.waiting_at = -1;
    f.done = false;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
    s.runnable.push_back(t);
  }
  while (!s.runnable.empty()) {
    s.current = s.runnable.front();
    s.runnable.pop_front();
    swapcontext(&s.main, &s.fibers[s.current].context);
  }
  s.current = -1;
  int stuck = 0;
  for (int t = 0; t < threads; t++) stuck += !s.fibers[t].done;
  if (stuck > 0) {
    const BlockState& b = block_state();
    std::fprintf(stderr, "cuda_emulation: deadlock in block (%u, %u, %u): %d of %d threads wait at a barrier that the "
                 "others never reach:\n", b.block_idx.x, b.block_idx.y, b.block_idx.z, stuck, threads);
    int shown = 0;
    for (int t = 0; t < threads && shown < 8; t++) {
      const Fiber& f = s.fibers[t];
      if (f.done) continue;
      shown++;
      if (f.waiting_at == kBlockGroup) {
        std::fprintf(stderr, "  thread %d waits at __syncthreads\n", t);
      } else {
        std::fprintf(stderr, "  thread %d waits at __syncwarp (or a shuffle / WMMA product) of warp %d\n", t,
                     f.waiting_at);
      }
    }
    std::abort();
  }
}

}  // namespace cuda_emulation

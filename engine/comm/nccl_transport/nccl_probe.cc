// engine/comm/nccl_transport/nccl_probe.cc: a two-way exchange over NcclTransport between neighbouring stages,
// with device and host payloads, checked element by element. Run by tools/gpu/check.sh under mpirun.
#include <cstdio>
#include <cstdlib>
#include <vector>

#ifdef RESBM_HAVE_CUDA
#include <cuda_runtime.h>

#include "engine/comm/nccl_transport/nccl_transport.h"
#endif

int main(int argc, char** argv) {
#ifndef RESBM_HAVE_CUDA
  (void)argc, (void)argv;
  std::printf("nccl_probe: built without CUDA: nothing to probe\n");
  return 0;
#else
  const int stages = argc > 1 ? std::atoi(argv[1]) : 2;
  engine::comm::NcclTransport transport(stages, /*timeout_s=*/30.0);
  const int me = transport.stage();
  const size_t n = 1 << 20;  // 4 MiB of floats per message
  std::vector<float> host(n), expect(n);
  float* dev = nullptr;
  if (cudaMalloc(&dev, n * sizeof(float)) != cudaSuccess) return 1;
  int bad = 0;
  // Each micro-batch, every stage first SENDS both ways (forward: a device payload; backward: a host payload) and
  // only then receives: the crossing pattern of 1F1B's steady state, which would deadlock a transport that ran both
  // directions on one NCCL stream with messages this large (4 MiB).
  auto fwd_value = [](int sender, int micro, size_t i) { return static_cast<float>(sender * 1000003 + micro * 7 + i); };
  auto bwd_value = [](int sender, int micro, size_t i) { return -static_cast<float>(sender * 31 + micro + i); };
  std::vector<float> back(n);
  for (int micro = 0; micro < 3; micro++) {
    if (!transport.is_last()) {
      for (size_t i = 0; i < n; i++) host[i] = fwd_value(me, micro, i);
      cudaMemcpy(dev, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
      transport.send(engine::comm::Direction::forward, micro, dev, n * sizeof(float));
    }
    if (!transport.is_first()) {
      for (size_t i = 0; i < n; i++) back[i] = bwd_value(me, micro, i);
      transport.send(engine::comm::Direction::backward, micro, back.data(), n * sizeof(float));
    }
    if (!transport.is_first()) {
      transport.recv(engine::comm::Direction::forward, micro, dev, n * sizeof(float));
      cudaMemcpy(host.data(), dev, n * sizeof(float), cudaMemcpyDeviceToHost);
      for (size_t i = 0; i < n; i++) bad += host[i] != fwd_value(me - 1, micro, i);
    }
    if (!transport.is_last()) {
      transport.recv(engine::comm::Direction::backward, micro, expect.data(), n * sizeof(float));
      for (size_t i = 0; i < n; i++) bad += expect[i] != bwd_value(me + 1, micro, i);
    }
  }
  transport.flush();
  cudaFree(dev);
  std::printf("nccl_probe: stage %d of %d on GPU %d: %s (%d wrong elements; %llu bytes sent forward, %llu backward)\n",
              me, stages, transport.device(), bad == 0 ? "OK" : "FAILED", bad,
              static_cast<unsigned long long>(transport.stats().total_bytes(engine::comm::Direction::forward)),
              static_cast<unsigned long long>(transport.stats().total_bytes(engine::comm::Direction::backward)));
  return bad == 0 ? 0 : 1;
#endif
}

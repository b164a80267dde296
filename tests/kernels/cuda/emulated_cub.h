// tests/kernels/cuda/emulated_cub.h: what an emulated .cu file (emulated_cuda_test) sees instead of CUB's
// device_radix_sort.cuh: cub::DeviceRadixSort::SortPairs as a stable sort on the host, so that the kernels around
// it (embedding.cu's and bf16_embedding.cu's grouped backward) run emulated. CUB itself is not tested here.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "tests/kernels/cuda/cuda_emulation.h"

namespace cub {

struct DeviceRadixSort {
  // CUB's contract: with temp == nullptr only the scratch size is returned; otherwise (keys_out, values_out) get the
  // pairs stably sorted by key (a radix sort of signed integers orders them as numbers, as < does). Only full-width
  // keys are emulated. The scratch is filled with 0xFF bytes, as CUB leaves it holding its own data.
  template <typename Key, typename Value>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const Key* keys_in, Key* keys_out,
                               const Value* values_in, Value* values_out, int n, int begin_bit, int end_bit,
                               cudaStream_t = nullptr) {
    if (begin_bit != 0 || end_bit != static_cast<int>(8 * sizeof(Key))) {
      std::fprintf(stderr, "emulated cub::DeviceRadixSort::SortPairs: only full-width keys are emulated\n");
      std::abort();
    }
    constexpr size_t kScratch = 256;
    if (temp == nullptr) {
      temp_bytes = kScratch;
      return cudaSuccess;
    }
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return keys_in[a] < keys_in[b]; });
    std::vector<Key> keys(n);
    std::vector<Value> values(n);
    for (int i = 0; i < n; i++) keys[i] = keys_in[order[i]], values[i] = values_in[order[i]];
    std::copy(keys.begin(), keys.end(), keys_out);
    std::copy(values.begin(), values.end(), values_out);
    std::memset(temp, 0xFF, std::min(temp_bytes, kScratch));
    return cudaSuccess;
  }
};

}  // namespace cub

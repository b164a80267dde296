// data/rng.h: a small deterministic PCG32 generator and seed mixing for the loader's shuffles.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace data {

// SplitMix64 finaliser: turns (seed, epoch, shard) combinations into well-spread 64-bit seeds.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// PCG32 (O'Neill's XSH-RR variant): 64-bit state, 32-bit output; same sequence on every platform.
class Pcg32 {
 public:
  explicit Pcg32(uint64_t seed) : state_(0), inc_((mix64(seed) << 1) | 1u) {
    next();
    state_ += mix64(seed ^ 0xDA3E39CB94B95BDBull);
    next();
  }
  uint32_t next() {
    const uint64_t old = state_;
    state_ = old * 6364136223846793005ull + inc_;
    const uint32_t xorshifted = static_cast<uint32_t>(((old >> 18u) ^ old) >> 27u);
    const uint32_t rot = static_cast<uint32_t>(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
  }
  // Uniform in [0, bound) without modulo bias (Lemire's rejection on 64-bit products).
  uint64_t below(uint64_t bound) {
    if (bound <= 1) return 0;
    if (bound > UINT32_MAX) {
      const uint64_t wide = (static_cast<uint64_t>(next()) << 32) | next();
      return wide % bound;  // bias < bound / 2^64: negligible for shard sizes
    }
    const uint32_t b = static_cast<uint32_t>(bound);
    const uint32_t threshold = static_cast<uint32_t>(-b) % b;
    while (true) {
      const uint64_t product = static_cast<uint64_t>(next()) * b;
      if (static_cast<uint32_t>(product) >= threshold) return product >> 32;
    }
  }

 private:
  uint64_t state_, inc_;
};

// Fills *perm with a seeded uniform permutation of 0..n-1 (Fisher-Yates), reusing its capacity.
inline void seeded_permutation(uint64_t seed, int64_t n, std::vector<int64_t>* perm) {
  perm->resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) (*perm)[i] = i;
  Pcg32 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap((*perm)[i], (*perm)[j]);
  }
}

}  // namespace data

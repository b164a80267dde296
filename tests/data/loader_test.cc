// tests/data/loader_test.cc: the loader's sequential stream, shuffled coverage, exact resume, and rank slices.
#include "data/loader.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "data/error.h"
#include "data/shards.h"
#include "tests/data/data_test_util.h"

namespace {

// Shards whose token i is (base + i) % 50000, so every window of the stream is recognisable.
std::string make_shards(const std::string& name, const std::vector<int32_t>& sizes) {
  const std::string dir = data_test::fresh_dir(name);
  int32_t base = 0;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::vector<int32_t> tokens(static_cast<size_t>(sizes[s]));
    for (int32_t i = 0; i < sizes[s]; ++i) tokens[i] = (base + i) % 50000;
    base += 10000;
    data::write_shard(dir + "/shard_" + std::to_string(s) + ".bin", tokens);
  }
  return dir + "/shard_*.bin";
}

data::LoaderConfig config(const std::string& pattern, int B, int T, bool shuffle, int rank = 0, int ranks = 1) {
  data::LoaderConfig c;
  c.pattern = pattern;
  c.B = B;
  c.T = T;
  c.shuffle = shuffle;
  c.process_rank = rank;
  c.num_processes = ranks;
  c.seed = 42;
  return c;
}

// Identifies a sample by the first input token (unique in these shards) and checks that the row is a contiguous
// window of the stream with targets shifted by one.
int32_t check_row_and_key(const data::DataLoader& loader, int b) {
  const int T = loader.config().T;
  const int32_t* in = loader.inputs() + b * T;
  const int32_t* tg = loader.targets() + b * T;
  for (int t = 0; t < T; ++t) {
    EXPECT_EQ(tg[t], (in[t] + 1) % 50000) << "targets are inputs shifted by one";
    if (t > 0) {
      EXPECT_EQ(in[t], tg[t - 1]);
    }
  }
  return in[0];
}

TEST(Loader, SequentialYieldsExactlyTheTokenStream) {
  const std::string pattern = make_shards("loader_seq", {1001});
  const std::vector<uint16_t> stream = data::read_shard(pattern.substr(0, pattern.size() - 5) + "0.bin");
  data::DataLoader loader(config(pattern, 4, 8, false));
  EXPECT_EQ(loader.batches_per_epoch(), 1000 / 32);  // 125 samples of T+1 tokens at stride T, 31 full batches
  for (int64_t batch = 0; batch < loader.batches_per_epoch(); ++batch) {
    loader.next_batch();
    for (int i = 0; i < 32; ++i) {
      ASSERT_EQ(loader.inputs()[i], stream[batch * 32 + i]);
      ASSERT_EQ(loader.targets()[i], stream[batch * 32 + i + 1]);
    }
  }
  loader.next_batch();  // wraps to epoch 1, back at the start of the stream
  EXPECT_EQ(loader.inputs()[0], stream[0]);
  EXPECT_EQ(loader.position().epoch, 1u);
}

TEST(Loader, ShuffledVisitsEverySampleOncePerEpochInANewOrder) {
  // 3 shards: 41, 81 and 121 tokens at T=4 give 10 + 20 + 30 = 60 samples = 15 batches of B=4.
  const std::string pattern = make_shards("loader_shuffle", {41, 81, 121});
  data::DataLoader loader(config(pattern, 4, 4, true));
  ASSERT_EQ(loader.total_samples(), 60);
  ASSERT_EQ(loader.batches_per_epoch(), 15);
  std::vector<int32_t> orders[2];
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::set<int32_t> seen;
    for (int batch = 0; batch < 15; ++batch) {
      loader.next_batch();
      for (int b = 0; b < 4; ++b) {
        const int32_t key = check_row_and_key(loader, b);
        EXPECT_TRUE(seen.insert(key).second) << "sample starting at " << key << " repeated in epoch " << epoch;
        orders[epoch].push_back(key);
      }
    }
    EXPECT_EQ(seen.size(), 60u);
  }
  EXPECT_NE(orders[0], orders[1]) << "each epoch reshuffles";
  std::vector<int32_t> sorted = orders[0];
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(orders[0], sorted) << "shuffled mode must not read in stream order";
}

TEST(Loader, SaveAndRestoreContinuesBitExactly) {
  const std::string pattern = make_shards("loader_resume", {41, 81, 121});
  data::DataLoader reference(config(pattern, 4, 4, true));
  std::vector<int32_t> expected;
  std::vector<uint8_t> saved;
  for (int step = 0; step < 40; ++step) {  // crosses two epoch boundaries
    if (step == 23) saved = reference.position().to_bytes();
    reference.next_batch();
    if (step >= 23) expected.insert(expected.end(), reference.inputs(), reference.inputs() + 16);
  }
  data::DataLoader resumed(config(pattern, 4, 4, true));
  resumed.next_batch();  // somewhere else first, to show that set_position really moves it
  resumed.set_position(data::LoaderPosition::from_bytes(saved.data(), saved.size()));
  std::vector<int32_t> got;
  for (int step = 23; step < 40; ++step) {
    resumed.next_batch();
    got.insert(got.end(), resumed.inputs(), resumed.inputs() + 16);
  }
  EXPECT_EQ(got, expected);

  // A position from other settings is refused, and so is a corrupt blob.
  data::DataLoader other(config(pattern, 2, 4, true));
  EXPECT_THROW(other.set_position(reference.position()), data::DataError);
  saved[0] ^= 1;
  EXPECT_THROW(data::LoaderPosition::from_bytes(saved.data(), saved.size()), data::DataError);
}

TEST(Loader, RanksReadDisjointSlicesCoveringTheEpoch) {
  const std::string pattern = make_shards("loader_ranks", {41, 81, 121});
  for (bool shuffle : {false, true}) {
    std::map<int32_t, int> owner;
    for (int rank = 0; rank < 3; ++rank) {
      data::DataLoader loader(config(pattern, 4, 4, shuffle, rank, 3));
      ASSERT_EQ(loader.batches_per_epoch(), 5);  // 60 samples / (B=4 * 3 ranks)
      for (int batch = 0; batch < 5; ++batch) {
        loader.next_batch();
        for (int b = 0; b < 4; ++b) {
          const int32_t key = check_row_and_key(loader, b);
          EXPECT_TRUE(owner.emplace(key, rank).second) << "sample " << key << " read by two ranks";
        }
      }
    }
    EXPECT_EQ(owner.size(), 60u) << "shuffle=" << shuffle;
  }
}

TEST(Loader, ValidationAlwaysStartsAtTheBeginning) {
  const std::string pattern = make_shards("loader_val", {201});
  data::ValidationLoader val(pattern, 2, 10);
  EXPECT_EQ(val.batches(), 10);
  for (int round = 0; round < 2; ++round) {
    val.start();
    val.next_batch();
    EXPECT_EQ(val.inputs()[0], 0);
    val.next_batch();
    EXPECT_EQ(val.inputs()[0], 20);
  }
}

TEST(Loader, BadConfigurationsAreReported) {
  const std::string pattern = make_shards("loader_bad", {41});
  EXPECT_THROW(data::DataLoader(config(pattern, 4, 64, false)), data::DataError);  // not one batch of data
  EXPECT_THROW(data::DataLoader(config(pattern, 1, 4, false, 2, 2)), data::DataError);  // rank out of range
  EXPECT_THROW(data::DataLoader(config(pattern + ".none", 1, 4, false)), data::DataError);  // empty glob
}

}  // namespace

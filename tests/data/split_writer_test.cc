// tests/data/split_writer_test.cc: the val/train routing and shard cutting used by tools/tokenize.
#include "data/split_writer.h"

#include <gtest/gtest.h>

#include "data/error.h"
#include "data/shards.h"
#include "tests/data/data_test_util.h"

namespace {

TEST(SplitWriter, FirstTokensGoToValThenTrainInBoundedShards) {
  const std::string dir = data_test::fresh_dir("split_writer");
  std::vector<int32_t> stream(23);
  for (int i = 0; i < 23; ++i) stream[i] = 100 + i;
  data::SplitWriter writer(dir, "t", 7, 5);
  writer.append(stream.data(), 10);  // appending in pieces must not change the result
  writer.append(stream.data() + 10, 13);
  writer.finish();
  EXPECT_EQ(writer.val_written(), 7);
  EXPECT_EQ(writer.train_written(), 16);
  // val: 5 + 2 tokens; train: 5 + 5 + 5 + 1 tokens; concatenated in order they give the stream back.
  const std::vector<std::string> expected_files = {dir + "/t_val_000000.bin",   dir + "/t_val_000001.bin",
                                                   dir + "/t_train_000000.bin", dir + "/t_train_000001.bin",
                                                   dir + "/t_train_000002.bin", dir + "/t_train_000003.bin"};
  ASSERT_EQ(writer.written(), expected_files);
  const std::vector<size_t> sizes = {5, 2, 5, 5, 5, 1};
  std::vector<int32_t> joined;
  for (size_t f = 0; f < expected_files.size(); ++f) {
    const std::vector<uint16_t> tokens = data::read_shard(expected_files[f]);
    EXPECT_EQ(tokens.size(), sizes[f]) << expected_files[f];
    joined.insert(joined.end(), tokens.begin(), tokens.end());
  }
  EXPECT_EQ(joined, stream);
}

TEST(SplitWriter, NoValSplitAndBadSettings) {
  const std::string dir = data_test::fresh_dir("split_writer_noval");
  data::SplitWriter writer(dir, "t", 0, 100);
  const std::vector<int32_t> ids = {1, 2, 3};
  writer.append(ids.data(), ids.size());
  writer.finish();
  ASSERT_EQ(writer.written().size(), 1u);
  EXPECT_EQ(writer.written()[0], dir + "/t_train_000000.bin");
  EXPECT_THROW(data::SplitWriter(dir, "t", -1, 100), data::DataError);
  EXPECT_THROW(data::SplitWriter(dir, "t", 0, 0), data::DataError);
  const int32_t too_big = 70000;
  EXPECT_THROW(writer.append(&too_big, 1), data::DataError);
}

}  // namespace

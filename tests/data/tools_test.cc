// tests/data/tools_test.cc: runs the tokenize and prepare binaries end to end (exit codes, shards, error messages).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/shards.h"
#include "data/tokenizer.h"
#include "tests/data/data_test_util.h"

extern char** environ;

namespace {

// Runs argv (argv[0] is a path under the runfiles tree) with stderr sent to `log`; returns the exit status.
int run_tool(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(TokenizeTool, WritesEndOfTextThenEachFileInPathOrder) {
  const std::string mirror = data_test::data_mirror();
  if (mirror.empty()) GTEST_SKIP() << data_test::kNoMirror;
  const std::string dir = data_test::fresh_dir("tokenize_tool");
  std::filesystem::create_directories(dir + "/in/sub");
  const std::vector<std::string> docs = {"Hello world.\n", "Second doc\n\nwith a blank line", "third, in sub/"};
  data_test::write_bytes(dir + "/in/a.txt", docs[0]);
  data_test::write_bytes(dir + "/in/b.txt", docs[1]);
  data_test::write_bytes(dir + "/in/sub/c.txt", docs[2]);
  const std::string log = dir + "/log.txt";
  ASSERT_EQ(run_tool({"tools/tokenize", dir + "/in", "--out", dir + "/out", "--val-tokens", "5", "--threads", "2",
                      "--vocab-dir", mirror + "/gpt2", "--name", "t"},
                     log),
            0)
      << data_test::slurp(log);
  // Expected stream: <|endoftext|> before each document; the ids come from the library (tested on its own against
  // the independent reference in tokenizer_test).
  const data::Tokenizer tok = data::Tokenizer::from_dir(mirror + "/gpt2");
  std::vector<uint16_t> expected;
  for (const std::string& doc : docs) {
    expected.push_back(data::Tokenizer::kEndOfText);
    for (int32_t id : tok.encode(doc)) expected.push_back(static_cast<uint16_t>(id));
  }
  std::vector<uint16_t> got = data::read_shard(dir + "/out/t_val_000000.bin");
  EXPECT_EQ(got.size(), 5u);
  const std::vector<uint16_t> train = data::read_shard(dir + "/out/t_train_000000.bin");
  got.insert(got.end(), train.begin(), train.end());
  EXPECT_EQ(got, expected);
  EXPECT_NE(data_test::slurp(log).find("3 documents"), std::string::npos) << data_test::slurp(log);
}

TEST(TokenizeTool, BadArgumentsFailWithAMessage) {
  const std::string dir = data_test::fresh_dir("tokenize_tool_bad");
  const std::string log = dir + "/log.txt";
  EXPECT_EQ(run_tool({"tools/tokenize", dir + "/missing", "--out", dir + "/o", "--vocab-dir", dir}, log), 1);
  EXPECT_NE(data_test::slurp(log).find("cannot open"), std::string::npos) << data_test::slurp(log);  // the vocab is checked first
  EXPECT_EQ(run_tool({"tools/tokenize", "x", "--out", dir + "/o", "--threads", "two"}, log), 1);
  EXPECT_NE(data_test::slurp(log).find("--threads needs a non-negative integer"), std::string::npos) << data_test::slurp(log);
}

TEST(PrepareTool, OfflineWithoutMirrorOrWithABadMirrorSaysWhatToDo) {
  const std::string dir = data_test::fresh_dir("prepare_tool");
  const std::string log = dir + "/log.txt";
  EXPECT_EQ(run_tool({"tools/prepare", "tinyshakespeare", "--out", dir + "/o", "--mirror", dir + "/empty"}, log), 1);
  EXPECT_NE(data_test::slurp(log).find("--mirror"), std::string::npos) << data_test::slurp(log);
  EXPECT_EQ(run_tool({"tools/prepare", "wikipedia", "--out", dir + "/o"}, log), 2);
  EXPECT_NE(data_test::slurp(log).find("unknown dataset"), std::string::npos) << data_test::slurp(log);
}

}  // namespace

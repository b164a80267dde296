// tests/train/flags_test.cc: parsing, validation errors (one line, saying what to do) and --help coverage.
#include "train/flags.h"

#include <gtest/gtest.h>

namespace train {
namespace {

// The FlagError message of parsing args, or "" when they parse.
std::string error_of(const std::vector<std::string>& args) {
  try {
    parse_flags(args);
  } catch (const FlagError& e) {
    return e.what();
  }
  return "";
}

TEST(Flags, DefaultsAreValid) {
  const TrainFlags f = parse_flags(std::vector<std::string>{});
  EXPECT_EQ(f.preset, "tiny");
  EXPECT_EQ(f.stages, 2);
  EXPECT_EQ(f.bottleneck, "resbm");
  EXPECT_EQ(f.num_micro_batches(), 1);
}

TEST(Flags, BothSyntaxesAndBooleans) {
  const TrainFlags f = parse_flags(std::vector<std::string>{
      "--batch-size", "4", "--seq-len=32", "--lr", "3e-4", "--optimizer=muon", "--resume", "--no-muon-nesterov",
      "--seed", "18446744073709551615", "--total-batch", "512"});
  EXPECT_EQ(f.batch_size, 4);
  EXPECT_EQ(f.seq_len, 32);
  EXPECT_FLOAT_EQ(f.lr, 3e-4f);
  EXPECT_EQ(f.optimizer, "muon");
  EXPECT_TRUE(f.resume);
  EXPECT_FALSE(f.muon_nesterov);
  EXPECT_EQ(f.seed, 18446744073709551615ull);
  EXPECT_EQ(f.tokens_per_step(), 512);
  EXPECT_EQ(f.num_micro_batches(), 4);  // 512 / (4 * 32)
}

TEST(Flags, TotalBatchMustBeAMultipleOfBT) {
  const std::string e = error_of({"--batch-size", "8", "--seq-len", "64", "--total-batch", "1000"});
  EXPECT_NE(e.find("--total-batch 1000 is not a multiple of B*T = 512"), std::string::npos) << e;
  EXPECT_NE(e.find("such as 1024"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << "errors are one line: " << e;
  const std::string e2 = error_of({"--batch-size", "8", "--seq-len", "64", "--total-batch", "1024",
                                   "--micro-batches", "4"});
  EXPECT_NE(e2.find("disagree: B*T*M = 2048"), std::string::npos) << e2;
  EXPECT_EQ(parse_flags(std::vector<std::string>{"--batch-size", "8", "--seq-len", "64", "--total-batch", "1024",
                                                 "--micro-batches", "2"}).num_micro_batches(), 2);
  EXPECT_EQ(parse_flags(std::vector<std::string>{"--micro-batches", "3"}).tokens_per_step(), 3 * 8 * 64);
}

TEST(Flags, ErrorsSayWhatIsWrong) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;  // a fragment of the one-line message
  };
  const std::vector<Case> cases = {
      {{"--bogus", "1"}, "unknown flag --bogus; run with --help"},
      {{"--batch-size"}, "--batch-size needs an integer"},
      {{"--batch-size", "eight"}, "--batch-size expects an integer, got 'eight'"},
      {{"--batch-size", "0"}, "--batch-size must be >= 1, got 0"},
      {{"--lr", "nan"}, "--lr expects a number"},
      {{"--lr", "-1"}, "--lr must be > 0"},
      {{"--optimizer", "sgd"}, "--optimizer must be one of adamw, muon; got 'sgd'"},
      {{"--bottleneck", "zip"}, "--bottleneck must be one of none, resbm, linear, ae, quant"},
      {{"--seed", "-3"}, "--seed expects a non-negative integer"},
      {{"--resume=maybe"}, "--resume expects true or false"},
      {{"positional"}, "unexpected argument 'positional'"},
      {{"--resume", "--sample-only"}, "exclude each other"},
      {{"--run-name", "a/b"}, "--run-name must be a non-empty name without '/'"},
      // What the multi-process trainer of old accepted: trailing text, a wrapped integer, a NaN.
      {{"--lr", "0.001x"}, "--lr expects a number, got '0.001x'"},
      {{"--batch-size", "4294967297"}, "--batch-size expects an integer, got '4294967297'"},
      {{"--lr", "nan"}, "--lr expects a number, got 'nan'"},
      {{"--link-mbps", "inf"}, "--link-mbps expects a number, got 'inf'"},
      {{"--executor", "ssh"}, "--executor must be one of local, mpi; got 'ssh'"},
      {{"--link-mode", "star"}, "--link-mode must be one of boundary, node; got 'star'"},
      {{"--threads", "-1"}, "--threads must be >= 0, got -1"},
      {{"--comm-timeout-s", "0"}, "--comm-timeout-s must be > 0"},
      {{"--max-restarts", "-1"}, "--max-restarts must be >= 0, got -1"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.args);
    EXPECT_NE(e.find(c.expected), std::string::npos) << "args[0]=" << c.args[0] << " gave: '" << e << "'";
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST(Flags, BooleanTakesAnExplicitZeroOrOne) {
  // "--untie-head 1" (the old pipeline binary's spelling) and a bare "--untie-head" mean the same.
  EXPECT_TRUE(parse_flags(std::vector<std::string>{"--untie-head", "1", "--steps", "3"}).untie_head);
  EXPECT_FALSE(parse_flags(std::vector<std::string>{"--untie-head", "0"}).untie_head);
  const TrainFlags f = parse_flags(std::vector<std::string>{"--untie-head", "--steps", "3"});
  EXPECT_TRUE(f.untie_head);
  EXPECT_EQ(f.steps, 3);
}

TEST(Flags, HelpDocumentsEveryFlag) {
  const std::string help = flags_help("train");
  const TrainFlags f;
  for (const auto& kv : flag_values(f)) {
    EXPECT_NE(help.find("--" + kv.first + " "), std::string::npos) << "--" << kv.first << " missing from --help";
  }
  EXPECT_NE(help.find("--help"), std::string::npos);
  EXPECT_TRUE(parse_flags(std::vector<std::string>{"--help", "--batch-size", "0"}).help)
      << "--help must win over otherwise invalid flags";
}

TEST(Flags, FlagValuesRoundTrip) {
  // Every flag printed by flag_values parses back to the same values: the config record is a faithful replay.
  const TrainFlags f = parse_flags(std::vector<std::string>{"--lr", "0.00123", "--steps", "7", "--prompt", "to be"});
  std::vector<std::string> args;
  for (const auto& kv : flag_values(f)) args.push_back("--" + kv.first + "=" + kv.second);
  const TrainFlags g = parse_flags(args);
  EXPECT_EQ(flag_values(f), flag_values(g));
  EXPECT_EQ(g.prompt, "to be");
}

}  // namespace
}  // namespace train

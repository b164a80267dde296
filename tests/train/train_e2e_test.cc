// tests/train/train_e2e_test.cc: the //train binary end to end on tiny generated shards: resume is bit-exact
// (clean stop and kill -9), NaN stops the run with the last checkpoint intact, bad input is a one-line error with
// a non-zero exit, --sample-only samples from a checkpoint.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/shards.h"
#include "tests/pipeline/subprocess.h"
#include "train/checkpoint.h"

namespace {

const char* kBinary = "train/train";  // runfiles path of //train

std::string tmp_dir() { return std::getenv("TEST_TMPDIR"); }

// Shards of a repetitive token stream (period 97, so a model can learn it), made once per test process.
const std::string& data_glob_dir() {
  static const std::string dir = [] {
    const std::string d = tmp_dir() + "/shards";
    train::make_dirs(d);
    std::vector<int32_t> tokens(6000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 31) % 97 + 100);
    data::write_shard(d + "/tiny_train.bin", tokens);
    tokens.resize(1500);
    data::write_shard(d + "/tiny_val.bin", tokens);
    return d;
  }();
  return dir;
}

// Small model and data flags shared by every run; out_dir is per run.
std::vector<std::string> base_args(const std::string& out_dir) {
  return {"--train-data", data_glob_dir() + "/tiny_train.bin", "--val-data", data_glob_dir() + "/tiny_val.bin",
          "--data-dir", tmp_dir() + "/data_dir", "--num-layers", "2", "--channels", "32", "--num-heads", "2",
          "--batch-size", "2", "--seq-len", "16", "--ratio", "4", "--eval-batches", "1", "--eval-interval", "0",
          "--sample-length", "4", "--warmup-steps", "3", "--lr", "3e-2", "--out-dir", out_dir};
}

struct Result {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs the trainer to completion (bounded by `timeout`), capturing its output.
Result run_trainer(const std::vector<std::string>& args) {
  const std::string out_file = tmp_dir() + "/run_output.txt";
  std::string cmd = "timeout 120 " + std::string(kBinary);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " > " + out_file + " 2>&1";
  const int status = std::system(cmd.c_str());
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(out_file);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// step -> "loss grad_norm" as printed in log.jsonl (9 significant digits: a float round-trips, so equal strings
// mean bitwise equal floats). The last record of a step wins, as after a resume.
std::map<int, std::string> logged_steps(const std::string& out_dir) {
  std::istringstream in(pipeline_test::read_file(out_dir + "/log.jsonl"));
  std::map<int, std::string> steps;
  std::string line;
  while (std::getline(in, line)) {
    if (pipeline_test::json_field(line, "type") != "\"step\"") continue;
    steps[std::stoi(pipeline_test::json_field(line, "step"))] =
        pipeline_test::json_field(line, "loss") + " " + pipeline_test::json_field(line, "grad_norm");
  }
  return steps;
}

// Starts the trainer in the background (stdout to /dev/null); the caller waits for or kills the pid.
pid_t start_trainer(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv = {const_cast<char*>(kBinary)};
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    execv(kBinary, argv.data());
    _exit(127);
  }
  return pid;
}

// The reference: 12 steps without interruption (run once per test process).
const Result& uninterrupted_result() {
  static const Result r =
      run_trainer(concat(base_args(tmp_dir() + "/uninterrupted"), {"--steps", "12", "--checkpoint-interval", "0"}));
  return r;
}

const std::map<int, std::string>& uninterrupted_run() {
  static const std::map<int, std::string> steps = [] {
    EXPECT_EQ(uninterrupted_result().exit_code, 0) << uninterrupted_result().output;
    return logged_steps(tmp_dir() + "/uninterrupted");
  }();
  return steps;
}

TEST(TrainE2E, LossFallsAndSampleIsPrinted) {
  const auto& steps = uninterrupted_run();
  ASSERT_EQ(steps.size(), 12u);
  const double first = std::stod(steps.at(1)), last = std::stod(steps.at(12));
  // A period-97 stream is easy: at lr 3e-2 twelve steps bring 10.8 nats to about 5.6; demand a clear 2-nat drop.
  EXPECT_LT(last, first - 2.0);
  EXPECT_NE(uninterrupted_result().output.find("---- sample at step 12"), std::string::npos)
      << uninterrupted_result().output;
}

TEST(TrainE2E, StopAndResumeIsBitExact) {
  const std::string out = tmp_dir() + "/stop_resume";
  ASSERT_EQ(uninterrupted_run().size(), 12u);
  const Result a = run_trainer(concat(base_args(out), {"--steps", "12", "--stop-after", "5"}));
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_EQ(logged_steps(out).size(), 5u);
  const Result b = run_trainer(concat(base_args(out), {"--steps", "12", "--resume"}));
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(b.output.find("resumed from"), std::string::npos) << b.output;
  EXPECT_EQ(logged_steps(out), uninterrupted_run());
}

// `flags` (8 steps) run whole, and again stopped after step 3 then resumed: the logged steps must be bitwise equal.
// Returns the whole run's result.
Result expect_stop_resume_bit_exact(const std::string& name, const std::vector<std::string>& flags) {
  const std::string whole = tmp_dir() + "/" + name + "_whole", parts = tmp_dir() + "/" + name + "_parts";
  const Result w = run_trainer(concat(base_args(whole), flags));
  EXPECT_EQ(w.exit_code, 0) << w.output;
  const Result stopped = run_trainer(concat(concat(base_args(parts), flags), {"--stop-after", "3"}));
  EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
  const Result r = run_trainer(concat(concat(base_args(parts), flags), {"--resume"}));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto expected = logged_steps(whole);
  EXPECT_EQ(expected.size(), 8u);
  EXPECT_EQ(logged_steps(parts), expected);
  return w;
}

TEST(TrainE2E, MuonThreeStagesOneFOneBResumeIsBitExact) {
  // Muon's momentum and AdamW's moments of every stage, with M = 2 micro-batches under 1F1B.
  const std::vector<std::string> flags = {"--num-layers", "3", "--stages", "3", "--micro-batches", "2",
                                          "--schedule", "1f1b", "--optimizer", "muon", "--steps", "8"};
  expect_stop_resume_bit_exact("muon", flags);
}

// The bf16 policy: the checkpoint holds the fp32 masters only, and the resumed run rebuilds the bf16 copy exactly as
// the last step's stochastic write-back left it (AdamW::restore_model_copy); re-rounding to nearest instead would
// change the next step's forward pass. Two stages with bf16 codes and two replicas under sync data parallelism.
TEST(TrainE2E, Bf16PolicyResumeIsBitExact) {
  expect_stop_resume_bit_exact("bf16", {"--dtype", "bf16", "--stages", "2", "--steps", "8"});
  expect_stop_resume_bit_exact("bf16_dp", {"--dtype", "bf16", "--stages", "2", "--replicas", "2", "--steps", "8"});
}

// int8 codes whose gradients round stochastically from (seed, step, stage, micro-batch): a resumed run must draw the
// same bits as the uninterrupted one (the step counter is restored from the checkpoint). Byte tokens (the shards'
// ids are below 256) and token re-injection on the middle and last stages ride along.
TEST(TrainE2E, Int8CodesByteTokensReinjectionResumeIsBitExact) {
  const std::vector<std::string> flags = {"--num-layers", "3", "--stages", "3", "--tokenizer", "bytes",
                                          "--code-dtype", "int8", "--code-width", "3", "--reinject-tokens", "copy",
                                          "--untie-head", "--steps", "8"};
  const Result whole = expect_stop_resume_bit_exact("int8", flags);
  EXPECT_NE(whole.output.find("---- sample at step 8"), std::string::npos) << whole.output;
}

// R = 2 replicas of a 2-stage pipeline: synchronous data parallelism, and DiLoCo with a sync every 2 steps stopped
// after step 3 (between two syncs: the outer state, the replicas' own parameters and optimizer states, and where
// the next sync falls all come back from the checkpoint).
TEST(TrainE2E, ReplicasSyncAndDilocoResumeIsBitExact) {
  const Result sync = expect_stop_resume_bit_exact("dp_step", {"--replicas", "2", "--stages", "2", "--steps", "8"});
  EXPECT_NE(sync.output.find("| replicas     2, synchronous"), std::string::npos) << sync.output;
  EXPECT_NE(sync.output.find("R=2 replicas x B=2"), std::string::npos) << sync.output;
  const Result diloco = expect_stop_resume_bit_exact(
      "dp_diloco", {"--replicas", "2", "--stages", "2", "--dp-sync", "diloco", "--inner-steps", "2", "--outer-lr",
                    "0.5", "--steps", "8"});
  EXPECT_NE(diloco.output.find("DiLoCo: a sync every 2 steps"), std::string::npos) << diloco.output;
  // Its data-parallel bytes are counted on the sync steps only.
  std::istringstream in(pipeline_test::read_file(tmp_dir() + "/dp_diloco_whole/log.jsonl"));
  std::string line;
  int synced = 0, quiet = 0;
  while (std::getline(in, line)) {
    if (pipeline_test::json_field(line, "type") != "\"step\"") continue;
    const int step = std::stoi(pipeline_test::json_field(line, "step"));
    const bool has_bytes = pipeline_test::json_field(line, "bytes_dp") != "0";
    EXPECT_EQ(has_bytes, step % 2 == 0) << line;
    (has_bytes ? synced : quiet) += 1;
  }
  EXPECT_EQ(synced, 4);
  EXPECT_EQ(quiet, 4);
  // A checkpoint of 2 replicas does not resume as 1.
  const Result other = run_trainer(concat(base_args(tmp_dir() + "/dp_diloco_whole"), {"--steps", "10", "--resume"}));
  EXPECT_EQ(other.exit_code, 2) << other.output;
  EXPECT_NE(other.output.find("holds 2 replica(s) of the pipeline, this run 1; resume with --replicas 2"),
            std::string::npos) << other.output;
  // Nor as another number of stages.
  const Result stages = run_trainer(concat(base_args(tmp_dir() + "/dp_diloco_whole"),
                                           {"--steps", "10", "--resume", "--replicas", "2", "--stages", "1"}));
  EXPECT_EQ(stages.exit_code, 2) << stages.output;
  EXPECT_NE(stages.output.find("has 2 stages, this run 1; resume with --stages 2"), std::string::npos)
      << stages.output;
}

TEST(TrainE2E, KillNineThenResumeIsBitExact) {
  const std::string out = tmp_dir() + "/killed";
  const std::string ckpt_dir = out + "/checkpoints";
  ASSERT_EQ(uninterrupted_run().size(), 12u);
  std::vector<std::string> args = concat(base_args(out), {"--steps", "12", "--checkpoint-interval", "1",
                                                          "--keep-last", "2"});
  const pid_t pid = start_trainer(args);
  ASSERT_GE(pid, 0);
  // Kill as soon as the second checkpoint exists: the run is then writing or about to write the next one.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (train::list_checkpoints(ckpt_dir).size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before the kill landed; the test proves nothing";
  const auto left = train::list_checkpoints(ckpt_dir);
  ASSERT_FALSE(left.empty());
  EXPECT_LT(left.back().first, 12);
  for (const auto& c : left) EXPECT_NO_THROW(train::Checkpoint::load(c.second)) << c.second;
  const Result b = run_trainer(concat(args, {"--resume"}));
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_EQ(logged_steps(out), uninterrupted_run());
}

TEST(TrainE2E, NanStopsWithLastGoodCheckpointIntact) {
  const std::string out = tmp_dir() + "/nan";
  const std::vector<std::string> every_step = {"--steps", "10", "--checkpoint-interval", "1", "--keep-last", "5",
                                               "--grad-clip", "0", "--warmup-steps", "0"};
  // Three good steps, then the run continues at lr 1e5: step 4's loss is computed from checkpoint 3 (finite), its
  // update blows the weights up and checkpoint 4 holds them; step 5's loss is not finite.
  ASSERT_EQ(run_trainer(concat(concat(base_args(out), every_step), {"--stop-after", "3"})).exit_code, 0);
  const Result r = run_trainer(concat(concat(base_args(out), every_step), {"--resume", "--lr", "1e5"}));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("is not finite: training stopped"), std::string::npos) << r.output;
  const auto steps = logged_steps(out);
  ASSERT_GE(steps.size(), 5u) << r.output;
  // The checkpoint named as good is one a finite loss was computed from, and --resume picks it.
  const auto left = train::list_checkpoints(out + "/checkpoints");
  ASSERT_FALSE(left.empty()) << r.output;
  const int64_t good = left.back().first;
  EXPECT_NE(r.output.find("known good (a finite loss was computed from its weights) is " + left.back().second),
            std::string::npos) << r.output;
  ASSERT_TRUE(steps.count(static_cast<int>(good) + 1)) << "no loss was logged from checkpoint " << good;
  EXPECT_TRUE(std::isfinite(std::stod(steps.at(static_cast<int>(good) + 1)))) << steps.at(static_cast<int>(good) + 1);
  // Resumed from it with a sane lr, training goes on with finite losses (from the poisoned checkpoint of the
  // diverging update it would not: its weights are ~1e29).
  const Result resumed = run_trainer(concat(concat(base_args(out), every_step), {"--resume", "--lr", "1e-3"}));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from " + left.back().second), std::string::npos) << resumed.output;
  const auto after = logged_steps(out);
  ASSERT_EQ(after.size(), 10u);
  for (const auto& kv : after) EXPECT_TRUE(std::isfinite(std::stod(kv.second))) << "step " << kv.first;
}

TEST(TrainE2E, SampleOnlyFromCheckpoint) {
  const std::string out = tmp_dir() + "/sample_only";
  ASSERT_EQ(run_trainer(concat(base_args(out), {"--steps", "2"})).exit_code, 0);
  const Result r = run_trainer(concat(base_args(out), {"--sample-only", "--sample-length", "6"}));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("sampling from " + out + "/checkpoints/ckpt_00000002.bin"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("---- sample at step 2"), std::string::npos) << r.output;
}

TEST(TrainE2E, BadInputIsOneLineErrorAndNonZeroExit) {
  const std::string out = tmp_dir() + "/bad";
  const std::string one_slot = tmp_dir() + "/one_slot_hostfile";  // too few for 2 ranks: refused before mpirun
  std::ofstream(one_slot) << "# one host\nlocalhost slots=1\n";
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{"--preset", "gpt5"}, "unknown --preset 'gpt5'; valid presets: tiny"},
      {{"--total-batch", "100"}, "--total-batch 100 is not a multiple of B*T = 32"},
      {{"--warp-speed", "9"}, "unknown flag --warp-speed"},
      {{"--train-data", "/nonexistent/*.bin"}, "/nonexistent/*.bin"},
      {{"--resume", "--out-dir", tmp_dir() + "/never_trained"}, "no checkpoint in"},
      {{"--ratio", "5"}, "invalid bottleneck"},
      // (--device cuda alone trains where a GPU is: tests/train/train_device_test.cc checks its refusal without one.)
      {{"--dtype", "fp16"}, "--dtype must be one of fp32, bf16, bf16-autocast; got 'fp16'"},
      {{"--dtype", "bf16", "--optimizer", "muon"}, "--dtype bf16 runs AdamW only so far"},
      {{"--dtype", "bf16", "--stages", "2", "--bottleneck", "ssn"}, "--dtype bf16 does not run --bottleneck ssn yet"},
      {{"--dtype", "bf16", "--replicas", "2", "--dp-sync", "diloco", "--inner-steps", "2"},
       "--dtype bf16 with --replicas runs --dp-sync step only so far"},
      {{"--link-mbps", "100"}, "need one process per stage"},
      {{"--replicas", "2", "--dp-sync", "diloco"}, "--dp-sync diloco needs --inner-steps H"},
      {{"--replicas", "2", "--inner-steps", "5"}, "--inner-steps is DiLoCo's: add --dp-sync diloco"},
      {{"--replicas", "2", "--dp-code", "int8"}, "--dp-code int8 compresses DiLoCo's outer sync"},
      {{"--dp-link-mbps", "100"}, "are for the sync between replicas: add --replicas 2 or more"},
      {{"--replicas", "2", "--dp-link-mbps", "-1"}, "--dp-link-mbps and --dp-link-latency-ms must be >= 0"},
      {{"--replicas", "0"}, "--replicas must be >= 1, got 0"},
      {{"--max-restarts", "-1"}, "--max-restarts must be >= 0, got -1"},
      {{"--max-restarts", "1"}, "--max-restarts needs --executor mpi"},
      {{"--executor", "mpi", "--stages", "2", "--hostfile", one_slot},
       "--stages 2 needs 2 ranks, but hostfile " + one_slot + " has 1 slot; add slots or lower --stages"},
  };
  for (const auto& c : cases) {
    const Result r = run_trainer(concat(base_args(out), c.args));
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << ": " << r.output;
    const size_t e = r.output.find("error: ");
    ASSERT_NE(e, std::string::npos) << r.output;
    const std::string line = r.output.substr(e, r.output.find('\n', e) - e);
    EXPECT_NE(line.find(c.expected), std::string::npos) << "error line: " << line;
  }
  // Starting a new run over an existing one is refused (it would mix their checkpoints).
  const std::string existing = tmp_dir() + "/existing";
  ASSERT_EQ(run_trainer(concat(base_args(existing), {"--steps", "1"})).exit_code, 0);
  const Result again = run_trainer(concat(base_args(existing), {"--steps", "1"}));
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.output.find("already holds a run (checkpoints up to step 1); pass --resume"), std::string::npos)
      << again.output;
  // Resuming into a run with other model flags is refused, naming both.
  const std::string other = tmp_dir() + "/other_model";
  ASSERT_EQ(run_trainer(concat(base_args(other), {"--steps", "1"})).exit_code, 0);
  const Result r = run_trainer(concat(base_args(other), {"--steps", "2", "--resume", "--channels", "64"}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("was written by a different run"), std::string::npos) << r.output;
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// What a hostile user tried on the multi-process trainer of old: each is refused before anything is trained.
TEST(TrainE2E, HostileInputsAreRefusedBeforeTraining) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::string file = tmp_dir() + "/never_exported.bin";
  const std::vector<Case> cases = {
      {{"--lr", "0.001x"}, "--lr expects a number, got '0.001x'"},
      {{"--batch-size", "4294967297"}, "--batch-size expects an integer, got '4294967297'"},
      {{"--lr", "nan"}, "--lr expects a number, got 'nan'"},
      {{"--steps", "100000", "--export-llmc", file}, "--export-llmc needs --bottleneck none"},
      {{"--steps", "100000", "--bottleneck", "none", "--untie-head", "--export-llmc", file},
       "--export-llmc cannot export --untie-head"},
      {{"--batch-size", "200000", "--seq-len", "16"}, "of activations in this process, more than the"},
  };
  for (const auto& c : cases) {
    const std::string out = tmp_dir() + "/hostile";
    std::system(("rm -rf " + out).c_str());
    const Result r = run_trainer(concat(base_args(out), c.args));
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << ": " << r.output;
    const size_t e = r.output.find("error: ");
    ASSERT_NE(e, std::string::npos) << r.output;
    EXPECT_NE(r.output.substr(e, r.output.find('\n', e) - e).find(c.expected), std::string::npos) << r.output;
    EXPECT_TRUE(logged_steps(out).empty()) << c.args[0] << ": nothing may be trained";
    EXPECT_FALSE(exists(file));
  }
}

// A token the model cannot embed in the validation split is found before the first step, not at the final
// evaluation after the last one.
TEST(TrainE2E, BadValidationTokenIsFoundBeforeTraining) {
  const std::string bad = tmp_dir() + "/bad_val.bin";
  std::vector<int32_t> tokens(1500, 101);
  tokens[1234] = 60000;  // beyond GPT-2's 50257
  data::write_shard(bad, tokens);
  const std::string out = tmp_dir() + "/bad_val";
  const Result r = run_trainer(concat(base_args(out), {"--val-data", bad, "--steps", "3"}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(bad), std::string::npos) << "the error names the file:\n" << r.output;
  EXPECT_TRUE(logged_steps(out).empty()) << r.output;
}

// --resume checks before it writes anything: a --steps it cannot reach, a changed flag (said and logged), a missing
// or truncated stage file (named, exit 2, nothing overwritten).
TEST(TrainE2E, ResumeChecksTheCheckpointAndSaysWhatChanged) {
  const std::string out = tmp_dir() + "/resume_checks";
  ASSERT_EQ(run_trainer(concat(base_args(out), {"--steps", "6", "--stop-after", "3"})).exit_code, 0);
  const Result low = run_trainer(concat(base_args(out), {"--steps", "2", "--resume"}));
  EXPECT_EQ(low.exit_code, 2) << low.output;
  EXPECT_NE(low.output.find("error: --steps 2 is not beyond the checkpoint's step 3"), std::string::npos) << low.output;

  const std::string manifest = train::checkpoint_path(out + "/checkpoints", 3);
  const std::string stage1 = train::stage_checkpoint_path(out + "/checkpoints", 3, 1);
  const std::string log_before = pipeline_test::read_file(out + "/log.jsonl");
  std::system(("cp " + stage1 + " " + stage1 + ".saved").c_str());
  ASSERT_EQ(truncate(stage1.c_str(), 1000), 0);
  const Result truncated = run_trainer(concat(base_args(out), {"--steps", "6", "--resume"}));
  EXPECT_EQ(truncated.exit_code, 2) << truncated.output;
  EXPECT_NE(truncated.output.find("stage 1's file " + stage1), std::string::npos) << truncated.output;
  EXPECT_NE(truncated.output.find("truncated"), std::string::npos) << truncated.output;
  ASSERT_EQ(std::remove(stage1.c_str()), 0);
  const Result missing = run_trainer(concat(base_args(out), {"--steps", "6", "--resume"}));
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("stage 1's file " + stage1 + " cannot be used (cannot open"), std::string::npos)
      << missing.output;
  const std::string log_after = pipeline_test::read_file(out + "/log.jsonl");
  EXPECT_EQ(log_after, log_before) << "a refused resume writes nothing";
  EXPECT_TRUE(exists(manifest));

  std::system(("mv " + stage1 + ".saved " + stage1).c_str());
  const Result changed = run_trainer(concat(base_args(out), {"--steps", "6", "--resume", "--lr", "1e-2"}));
  EXPECT_EQ(changed.exit_code, 0) << changed.output;
  EXPECT_NE(changed.output.find("resume: --lr changed: 0.03 -> 0.01"), std::string::npos) << changed.output;
  const std::string log = pipeline_test::read_file(out + "/log.jsonl");
  EXPECT_NE(log.find("{\"type\": \"resume\", \"step\": 3, \"changed\": {\"lr\": \"0.03 -> 0.01\""),
            std::string::npos) << log;
  EXPECT_NE(log.rfind("\"lr\": \"0.01\""), std::string::npos) << "the log's config names the new --lr:\n" << log;
}

// Two runs never write one output directory: a --resume started while the run is alive is refused.
TEST(TrainE2E, SecondRunOnALiveOutputDirectoryIsRefused) {
  const std::string out = tmp_dir() + "/locked";
  std::vector<std::string> args = concat(base_args(out), {"--steps", "100000", "--checkpoint-interval", "1"});
  const pid_t pid = start_trainer(args);
  ASSERT_GE(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (train::list_checkpoints(out + "/checkpoints").empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const Result second = run_trainer(concat(args, {"--resume"}));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(second.exit_code, 2) << second.output;
  EXPECT_NE(second.output.find("error: another run (pid " + std::to_string(pid) + ") is writing " + out),
            std::string::npos) << second.output;
}

// The val loss printed by a run ("eval  <step> | val loss X"), as text.
std::string printed_val_loss(const std::string& output, int step) {
  char prefix[64];
  std::snprintf(prefix, sizeof(prefix), "eval  %5d | val loss ", step);
  const size_t p = output.find(prefix);
  if (p == std::string::npos) return "";
  const size_t start = p + std::string(prefix).size();
  return output.substr(start, output.find(' ', start) - start);
}

TEST(TrainE2E, ExportLlmcThenInitFromGivesTheSameModel) {
  // Train two stages joined by `none` (plain GPT-2 split in two), export, then start a one-stage run from the file:
  // its validation loss before any step must be the trained run's final one.
  const std::string out = tmp_dir() + "/export";
  const std::string file = tmp_dir() + "/exported.bin";
  const Result a = run_trainer(concat(base_args(out), {"--steps", "3", "--stages", "2", "--bottleneck", "none",
                                                       "--eval-interval", "3", "--export-llmc", file}));
  ASSERT_EQ(a.exit_code, 0) << a.output;
  const std::string trained = printed_val_loss(a.output, 3);
  ASSERT_NE(trained, "") << a.output;
  const Result b = run_trainer(concat(base_args(out + "_reload"), {"--init-from", file, "--steps", "0",
                                                                   "--stages", "1", "--bottleneck", "none",
                                                                   "--eval-interval", "1", "--num-layers", "0",
                                                                   "--channels", "0", "--num-heads", "0"}));
  ASSERT_EQ(b.exit_code, 0) << b.output;
  // Printed with 4 decimals: equal text means the same model to display precision (the split differs: the
  // two-stage run computes the same ops in the same order, so in practice the bits agree too).
  EXPECT_EQ(printed_val_loss(b.output, 0), trained) << b.output;
  // A ResBM run cannot be exported: llm.c's format has no place for its modules.
  const Result c = run_trainer(concat(base_args(out + "_resbm"), {"--steps", "1", "--export-llmc", file}));
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.output.find("--export-llmc needs --bottleneck none"), std::string::npos) << c.output;
  // Nor an untied head: llm.c's head is wte itself, with no place for lm_head.weight.
  const Result d = run_trainer(concat(base_args(out + "_untied"), {"--steps", "1", "--stages", "2", "--bottleneck",
                                                                   "none", "--untie-head=1", "--export-llmc", file}));
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_NE(d.output.find("--export-llmc cannot export --untie-head"), std::string::npos) << d.output;
}

TEST(TrainE2E, HelpListsFlagsAndExitsZero) {
  const Result r = run_trainer({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--bottleneck {none,resbm,linear,ae,quant,ssn}"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--max-restarts INT"), std::string::npos) << r.output;
}

}  // namespace

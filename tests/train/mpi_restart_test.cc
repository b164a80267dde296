// --max-restarts under --executor mpi: a rank killed (SIGKILL) mid-run is restarted from the newest complete
// checkpoint and the finished run's losses are bitwise the uninterrupted run's (with one pipeline, and with 2
// replicas under DiLoCo, killed between two syncs); without restarts the failure ends
// the run as before; a stalled rank (SIGSTOP, past --comm-timeout-s) is restarted too, from step 0 when there is no
// checkpoint yet, and a failure after the last restart ends the run saying so. Every job is bounded by `timeout`
// and by the test's waits.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

// 2 stages, 32 steps with a checkpoint every 8: the kill lands after the checkpoint of step 8 with 22 steps and 3
// checkpoints still ahead, seconds of the run (the checkpoints' fsyncs dominate its time), so it cannot miss.
const std::string kRun =
    "--executor mpi --num-layers 2 --channels 32 --num-heads 2 --batch-size 2 --seq-len 16 --ratio 4 --stages 2"
    " --steps 32 --warmup-steps 2 --lr 1e-2 --checkpoint-interval 8 --threads 1 --comm-timeout-s 10";

const pipeline_test::PipelineRun& uninterrupted() {
  static const pipeline_test::PipelineRun r = pipeline_test::run_pipeline("", kRun, "whole");
  return r;
}

// Steps rank 0 has logged (records, duplicates after a resume included).
int logged_records(const std::string& out_dir) {
  const std::string log = pipeline_test::read_file(out_dir + "/log.jsonl");
  int n = 0;
  const std::string record = "\"type\": \"step\"";
  for (size_t p = log.find(record); p != std::string::npos; p = log.find(record, p + 1)) ++n;
  return n;
}

// Waits (up to `seconds`) for `done`; false when it never came.
template <typename Done>
bool wait_for(Done done, double seconds) {
  const double start = pipeline_test::now_s();
  while (!done()) {
    if (pipeline_test::now_s() - start > seconds) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The pid a rank of stage `stage` wrote to --pid-dir; 0 while there is none or it is being written (a whole file
// ends with a newline: a torn one must not name another process, or 0, the test's own group, to kill()).
int pid_in(const std::string& dir, const std::string& name) {
  const std::string text = pipeline_test::read_file(dir + "/" + name + ".pid");
  return !text.empty() && text.back() == '\n' ? std::atoi(text.c_str()) : 0;
}
int stage_pid(const std::string& dir, int stage) { return pid_in(dir, "stage" + std::to_string(stage)); }

// A job of the trainer with kRun, `extra`, --pid-dir dir and --out-dir dir/out (dir emptied first).
struct Job {
  std::string dir, out, log;
  std::unique_ptr<pipeline_test::Background> process;
  Job(const std::string& tag, const std::string& extra, const std::string& run = kRun)
      : dir(pipeline_test::temp_dir() + "/" + tag) {
    std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
    out = dir + "/out";
    log = dir + "/job.log";
    process = std::make_unique<pipeline_test::Background>(
        "timeout 150 " + pipeline_test::trainer_binary() + " " + pipeline_test::data_flags() + " " + run + " " +
            extra + " --pid-dir " + dir + " --out-dir " + out,
        log);
  }
  std::string output() const { return pipeline_test::read_file(log); }
  // The launcher: the pid in the output lock (what a rank's pid must never be).
  int launcher() const { return std::atoi(pipeline_test::read_file(out + "/.lock").c_str()); }
  // Once rank 0 has logged `steps` steps, sends `sig` to stage 1's rank; returns its pid, or 0 (with the reason
  // added to the test's failures) when the steps never came or no rank was found to signal.
  int signal_stage_one_after(int steps, int sig) const { return signal_after(steps, sig, "stage1"); }
  // The same for the rank that wrote <pid_name>.pid.
  int signal_after(int steps, int sig, const std::string& pid_name) const {
    if (!wait_for([&] { return logged_records(out) >= steps; }, 90)) {
      ADD_FAILURE() << "step " << steps << " was never logged:\n" << output();
      return 0;
    }
    const int rank = pid_in(dir, pid_name);
    if (rank <= 0 || rank == launcher() || kill(rank, sig) != 0) {
      ADD_FAILURE() << "no " << pid_name << " rank to signal (pid " << rank << ", the launcher's " << launcher() << "):\n"
                    << output();
      return 0;
    }
    return rank;
  }
};

bool lock_is_held(const std::string& out_dir) {
  const int fd = open((out_dir + "/.lock").c_str(), O_RDWR);
  if (fd < 0) return false;
  const bool held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);  // releases it if this test took it
  return held;
}

TEST(MpiRestart, KilledRankIsRestartedAndTheRunIsBitwise) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: restarts are NOT tested here";
  ASSERT_EQ(uninterrupted().rc, 0) << uninterrupted().output;
  ASSERT_EQ(pipeline_test::loss_values(uninterrupted().losses).size(), 32u);
  Job job("restart", "--max-restarts 1");
  // Past the first checkpoint: step 10 logged (the checkpoint of step 8 is complete before step 9 starts).
  ASSERT_GT(job.signal_stage_one_after(10, SIGKILL), 0);
  ASSERT_TRUE(wait_for([&] { return job.output().find("\nrestart 1/1") != std::string::npos; }, 60))
      << "no restart after the kill (did the run end before it?):\n" << job.output();
  EXPECT_TRUE(lock_is_held(job.out)) << "the launcher must hold the output lock across restarts";
  ASSERT_EQ(job.process->wait(130), 0) << job.output();
  const std::string output = job.output();
  EXPECT_NE(output.find("restart 1/1: the job failed (mpirun exited with status 137: a rank ended by signal 9"),
            std::string::npos) << output;
  EXPECT_NE(output.find("); resuming from step "), std::string::npos) << output;
  EXPECT_NE(output.find("resumed from " + job.out + "/checkpoints/ckpt_000000"), std::string::npos) << output;
  EXPECT_GT(logged_records(job.out), 32) << "the steps after the checkpoint were logged twice";
  EXPECT_EQ(pipeline_test::logged_losses(job.out), uninterrupted().losses);  // the last record of each step
}

// R = 2 replicas x S = 2 stages under DiLoCo (a sync every 3 steps): the rank of replica 1's stage 0 (rank 2) is
// killed between two syncs; the restarted job resumes every replica and the outer state, bitwise.
TEST(MpiRestart, KilledReplicaRankIsRestartedAndTheRunIsBitwise) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: restarts are NOT tested here";
  const std::string run = kRun + " --replicas 2 --dp-sync diloco --inner-steps 3";
  const pipeline_test::PipelineRun whole = pipeline_test::run_pipeline("", run, "replicas_whole");
  ASSERT_EQ(whole.rc, 0) << whole.output;
  ASSERT_EQ(pipeline_test::loss_values(whole.losses).size(), 32u);
  Job job("replicas_restart", "--max-restarts 1", run);
  ASSERT_GT(job.signal_after(10, SIGKILL, "replica1.stage0"), 0);
  ASSERT_EQ(job.process->wait(130), 0) << job.output();
  EXPECT_NE(job.output().find("restart 1/1: the job failed"), std::string::npos) << job.output();
  EXPECT_EQ(pipeline_test::logged_losses(job.out), whole.losses);
}

TEST(MpiRestart, WithoutRestartsAKilledRankEndsTheRun) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: restarts are NOT tested here";
  Job job("no_restart", "--max-restarts 0");
  ASSERT_GT(job.signal_stage_one_after(2, SIGKILL), 0);
  const int rc = job.process->wait(40);
  const std::string output = job.output();
  EXPECT_NE(rc, 0) << output;
  EXPECT_NE(rc, -1) << "the job did not end after the kill:\n" << output;
  EXPECT_NE(output.find("process rank 1 with PID"), std::string::npos) << "mpirun names the dead rank:\n" << output;
  EXPECT_EQ(output.find("\nrestart "), std::string::npos) << output;
  EXPECT_LT(pipeline_test::loss_values(pipeline_test::logged_losses(job.out)).size(), 32u);
}

bool stopped_process_exists(int pid) {
  const std::string stat = pipeline_test::read_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] == 'T';
}

TEST(MpiRestart, StalledRankIsRestartedUntilRestartsRunOut) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: restarts are NOT tested here";
  Job job("stall", "--max-restarts 1 --comm-timeout-s 3");
  // Before the first checkpoint: the restart starts from step 0.
  const int stalled = job.signal_stage_one_after(2, SIGSTOP);
  ASSERT_GT(stalled, 0);
  ASSERT_TRUE(wait_for([&] { return job.output().find("\nrestart 1/1") != std::string::npos; }, 30)) << job.output();
  EXPECT_FALSE(stopped_process_exists(stalled)) << "the stalled rank outlived its job";
  // The second attempt's stage 1, as soon as it runs: killed, with no restart left.
  int second = 0;
  ASSERT_TRUE(wait_for([&] { return (second = stage_pid(job.dir, 1)) > 0 && second != stalled; }, 60))
      << job.output();
  ASSERT_EQ(kill(second, SIGKILL), 0);
  const int rc = job.process->wait(40);
  kill(stalled, SIGKILL);  // should it have survived (ours: started by this test)
  const std::string output = job.output();
  EXPECT_EQ(rc, 137) << output;
  EXPECT_NE(output.find("stage 0 (rank 0): no message from stage 1 (rank 1) within 3 s"), std::string::npos) << output;
  EXPECT_NE(output.find("restart 1/1: the job failed (mpirun exited with status 3); no checkpoint yet: starting "
                        "again from step 0, "), std::string::npos) << output;
  EXPECT_NE(output.find("error: the job failed (mpirun exited with status 137: a rank ended by signal 9, Killed) "
                        "and all 1 restart(s) of --max-restarts 1 were used; continue with --resume"),
            std::string::npos) << output;
}

}  // namespace

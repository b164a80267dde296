// Checkpoints across processes: kill -9 of one rank (stage 2 of 4) in the middle of an --executor mpi run, then the
// same command with --resume, ends with losses bitwise equal to a run that was never interrupted; and a checkpoint
// written under one executor resumes under the other. Every run is bounded by `timeout` and by the test's waits.
#include <signal.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

// Muon, an untied head, 4 stages under 1F1B with 2 micro-batches, a checkpoint every 3 of 12 steps.
const std::string kRun =
    "--num-layers 4 --channels 32 --num-heads 2 --batch-size 2 --seq-len 16 --ratio 4 --stages 4 --micro-batches 2"
    " --schedule 1f1b --optimizer muon --untie-head --steps 12 --warmup-steps 2 --lr 1e-2 --checkpoint-interval 3"
    " --threads 1 --comm-timeout-s 10";

const pipeline_test::PipelineRun& uninterrupted() {
  static const pipeline_test::PipelineRun r = pipeline_test::run_pipeline("", kRun + " --executor local", "whole");
  return r;
}

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

TEST(MpiResume, KillNineOfRankTwoThenResumeIsBitwise) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  ASSERT_EQ(uninterrupted().rc, 0) << uninterrupted().output;
  ASSERT_EQ(pipeline_test::loss_values(uninterrupted().losses).size(), 12u);
  const std::string dir = pipeline_test::temp_dir() + "/killed";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  const std::string command = pipeline_test::trainer_binary() + " " + pipeline_test::data_flags() + " " + kRun +
                              " --executor mpi --out-dir " + dir + "/out";
  {
    pipeline_test::Background job("timeout 120 " + command + " --pid-dir " + dir, dir + "/first.log");
    // Kill rank 2 once the checkpoint of step 6 is complete (its manifest exists): mid-run, with a resume point.
    const double start = pipeline_test::now_s();
    while (!exists(dir + "/out/checkpoints/ckpt_00000006.bin") && pipeline_test::now_s() - start < 90) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const int pid = std::atoi(pipeline_test::read_file(dir + "/stage2.pid").c_str());
    ASSERT_GT(pid, 0) << pipeline_test::read_file(dir + "/first.log");
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    const int rc = job.wait(40);
    EXPECT_NE(rc, 0) << "the job must fail when a rank dies:\n" << pipeline_test::read_file(dir + "/first.log");
    EXPECT_NE(rc, -1) << "the job did not end after the kill";
  }
  const std::string first = pipeline_test::logged_losses(dir + "/out");
  ASSERT_LT(pipeline_test::loss_values(first).size(), 12u) << "the run finished before the kill: it proves nothing";
  pipeline_test::Background resumed("timeout 120 " + command + " --resume", dir + "/resumed.log");
  ASSERT_EQ(resumed.wait(130), 0) << pipeline_test::read_file(dir + "/resumed.log");
  const std::string output = pipeline_test::read_file(dir + "/resumed.log");
  EXPECT_NE(output.find("resumed from " + dir + "/out/checkpoints/ckpt_0000000"), std::string::npos) << output;
  EXPECT_EQ(pipeline_test::logged_losses(dir + "/out"), uninterrupted().losses);
}

TEST(MpiResume, CheckpointsMoveBetweenExecutors) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  ASSERT_EQ(uninterrupted().rc, 0) << uninterrupted().output;
  // mpi -> local: stop after 6 steps under mpi, finish under local.
  const pipeline_test::PipelineRun part = pipeline_test::run_pipeline("", kRun + " --executor mpi --stop-after 6", "m2l");
  ASSERT_EQ(part.rc, 0) << part.output;
  const std::string resume = pipeline_test::trainer_binary() + " " + pipeline_test::data_flags() + " " + kRun +
                             " --resume --out-dir " + part.out_dir;
  pipeline_test::Background local("timeout 120 " + resume + " --executor local", part.out_dir + ".local.log");
  ASSERT_EQ(local.wait(130), 0) << pipeline_test::read_file(part.out_dir + ".local.log");
  EXPECT_EQ(pipeline_test::logged_losses(part.out_dir), uninterrupted().losses);
  // local -> mpi.
  const pipeline_test::PipelineRun head = pipeline_test::run_pipeline("", kRun + " --executor local --stop-after 3", "l2m");
  ASSERT_EQ(head.rc, 0) << head.output;
  pipeline_test::Background mpi("timeout 120 " + pipeline_test::trainer_binary() + " " + pipeline_test::data_flags() +
                                    " " + kRun + " --resume --executor mpi --out-dir " + head.out_dir,
                                head.out_dir + ".mpi.log");
  ASSERT_EQ(mpi.wait(130), 0) << pipeline_test::read_file(head.out_dir + ".mpi.log");
  EXPECT_EQ(pipeline_test::logged_losses(head.out_dir), uninterrupted().losses);
}

}  // namespace

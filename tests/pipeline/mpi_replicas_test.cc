// R = 2 replicas of a 2-stage pipeline as R x S = 4 mpirun ranks (rank = replica x S + stage, communicators split per
// replica and per stage) against the same run in one process (--executor local, the reference): bitwise the same
// losses, gradient norms, validation losses and sample, and every slot's checkpoint file byte for byte, under
// synchronous data parallelism and under DiLoCo (int8 payloads, whose stochastic rounding both draw alike). DiLoCo
// under mpi also stops between two syncs and resumes bit for bit: the ranks of replica 1 read the outer state from
// replica 0's files. Both executors run with --threads 1 (bitwise equality holds at equal thread counts).
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

const std::string kArgs =
    "--num-layers 2 --channels 32 --num-heads 2 --batch-size 2 --seq-len 16 --ratio 4 --steps 6 --warmup-steps 2"
    " --lr 1e-2 --threads 1 --comm-timeout-s 60 --eval-interval 3 --eval-batches 1 --sample-length 4"
    " --stages 2 --replicas 2 ";

// The validation losses a run logged, in order ("step val_loss" lines).
std::string logged_evals(const std::string& out_dir) {
  std::istringstream in(pipeline_test::read_file(out_dir + "/log.jsonl"));
  std::string line, out;
  while (std::getline(in, line)) {
    if (pipeline_test::json_field(line, "type") != "\"eval\"") continue;
    out += pipeline_test::json_field(line, "step") + " " + pipeline_test::json_field(line, "val_loss") + "\n";
  }
  return out;
}

// What the data-parallel sync sent, per step: "step bytes_dp [dp_stage_bytes]" (the array only on sync steps).
std::string logged_dp_bytes(const std::string& out_dir) {
  std::istringstream in(pipeline_test::read_file(out_dir + "/log.jsonl"));
  std::string line, out;
  while (std::getline(in, line)) {
    if (pipeline_test::json_field(line, "type") != "\"step\"") continue;
    const size_t at = line.find("\"dp_stage_bytes\": [");
    out += pipeline_test::json_field(line, "step") + " " + pipeline_test::json_field(line, "bytes_dp") + " " +
           (at == std::string::npos ? "" : line.substr(at, line.find(']', at) - at)) + "\n";
  }
  return out;
}

std::string sample_of(const std::string& output) {
  const size_t p = output.find("---- sample at step");
  return p == std::string::npos ? "" : output.substr(p, output.find("----\n", p + 10) - p);
}

// Runs `flags` under both executors and compares everything; returns the mpi run.
pipeline_test::PipelineRun expect_mpi_matches_local(const std::string& tag, const std::string& flags) {
  const pipeline_test::PipelineRun local =
      pipeline_test::run_pipeline("", kArgs + flags + " --executor local", tag + "_local");
  const pipeline_test::PipelineRun mpi = pipeline_test::run_pipeline("", kArgs + flags + " --executor mpi", tag + "_mpi");
  EXPECT_EQ(local.rc, 0) << local.output;
  EXPECT_EQ(mpi.rc, 0) << mpi.output;
  EXPECT_NE(mpi.output.find("one process per stage and replica (4 ranks)"), std::string::npos) << mpi.output;
  EXPECT_EQ(pipeline_test::loss_values(local.losses).size(), 6u) << local.losses;
  EXPECT_EQ(mpi.losses, local.losses);
  EXPECT_FALSE(logged_evals(local.out_dir).empty());
  EXPECT_EQ(logged_evals(mpi.out_dir), logged_evals(local.out_dir));
  EXPECT_NE(logged_dp_bytes(local.out_dir).find("dp_stage_bytes"), std::string::npos) << logged_dp_bytes(local.out_dir);
  EXPECT_EQ(logged_dp_bytes(mpi.out_dir), logged_dp_bytes(local.out_dir));
  EXPECT_NE(sample_of(local.output), "") << local.output;
  EXPECT_EQ(sample_of(mpi.output), sample_of(local.output));
  for (int r = 0; r < 2; ++r) {
    for (int s = 0; s < 2; ++s) {
      const std::string name = "/checkpoints/ckpt_00000006.replica" + std::to_string(r) + ".stage" +
                               std::to_string(s) + ".bin";
      const std::string a = pipeline_test::read_file(local.out_dir + name);
      EXPECT_FALSE(a.empty()) << name;
      EXPECT_TRUE(a == pipeline_test::read_file(mpi.out_dir + name))
          << "replica " << r << " stage " << s << "'s checkpoint differs between the executors";
    }
  }
  return mpi;
}

TEST(MpiReplicas, SyncDataParallelMatchesLocal) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  // M = 2 micro-batches per replica under 1F1B: each replica's rows are its own [r M B, (r+1) M B).
  expect_mpi_matches_local("dp_step", "--dp-sync step --micro-batches 2 --schedule 1f1b");
}

TEST(MpiReplicas, DilocoInt8MatchesLocalAndResumesBetweenSyncs) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  const std::string flags = "--dp-sync diloco --inner-steps 2 --dp-code int8";
  const pipeline_test::PipelineRun whole = expect_mpi_matches_local("dp_diloco", flags);
  // Stopped after step 3 (one inner step past a sync), resumed: the same as the whole run.
  const pipeline_test::PipelineRun first =
      pipeline_test::run_pipeline("", kArgs + flags + " --executor mpi --stop-after 3", "dp_diloco_parts");
  ASSERT_EQ(first.rc, 0) << first.output;
  const std::string log = first.out_dir + "_resume.log";
  pipeline_test::Background resume("timeout 120 " + pipeline_test::trainer_binary() + " " +
                                       pipeline_test::data_flags() + " " + kArgs + flags +
                                       " --executor mpi --resume --out-dir " + first.out_dir,
                                   log);
  ASSERT_EQ(resume.wait(130), 0) << pipeline_test::read_file(log);
  EXPECT_EQ(pipeline_test::logged_losses(first.out_dir), whole.losses);
  EXPECT_EQ(logged_evals(first.out_dir), logged_evals(whole.out_dir));
}

}  // namespace

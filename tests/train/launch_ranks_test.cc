// tests/train/launch_ranks_test.cc: what the --executor mpi launcher derives from R replicas x S stages before it
// starts anything: R x S ranks, the threads each gets when mpirun has not said how many share the host, and the
// refusal of a hostfile with fewer slots (one line naming both numbers; --replicas named only when R > 1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "train/flags.h"
#include "train/run_config.h"
#include "train/run_start.h"

namespace train {
namespace {

// An mpi config of S stages and R replicas (R set on the config: the flags still refuse --replicas under mpi).
RunConfig mpi_config(int S, int R, const std::string& hostfile = "") {
  std::vector<std::string> args = {"--executor", "mpi", "--stages", std::to_string(S), "--num-layers", "4"};
  if (!hostfile.empty()) args.insert(args.end(), {"--hostfile", hostfile});
  RunConfig c = make_run_config(parse_flags(args));
  c.replicas.replicas = R;
  return c;
}

std::string hostfile_with(const std::string& text) {
  static int n = 0;
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/hosts" + std::to_string(n++);
  std::ofstream(path) << text;
  return path;
}

// The FlagError of require_hostfile_slots, or "" when the hostfile has room.
std::string slots_error(const RunConfig& c) {
  try {
    require_hostfile_slots(c);
  } catch (const FlagError& e) {
    return e.what();
  }
  return "";
}

TEST(LaunchRanks, OneRankPerStageOfEveryReplica) {
  EXPECT_EQ(job_ranks(mpi_config(2, 1)), 2);
  EXPECT_EQ(job_ranks(mpi_config(2, 2)), 4);
  EXPECT_EQ(job_ranks(mpi_config(4, 3)), 12);
}

TEST(LaunchRanks, ThreadsShareTheCoresAmongAllRanks) {
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");  // the launcher, before mpirun
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(threads_per_process(mpi_config(2, 1)), std::max(1, cores / 2));
  EXPECT_EQ(threads_per_process(mpi_config(2, 2)), std::max(1, cores / 4));
  EXPECT_EQ(threads_per_process(mpi_config(1, 1)), std::max(1, cores));
}

TEST(LaunchRanks, HostfileNeedsASlotPerRank) {
  const std::string three = hostfile_with("a slots=2\nb\n");
  EXPECT_EQ(slots_error(mpi_config(2, 1, three)), "");
  EXPECT_EQ(slots_error(mpi_config(3, 1, three)), "");
  EXPECT_EQ(slots_error(mpi_config(2, 2, three)),
            "--replicas 2 x --stages 2 needs 4 ranks, but hostfile " + three +
                " has 3 slots; add slots or lower --replicas/--stages");
  const std::string one = hostfile_with("# one host\nlocalhost slots=1\n");
  EXPECT_EQ(slots_error(mpi_config(2, 1, one)),
            "--stages 2 needs 2 ranks, but hostfile " + one + " has 1 slot; add slots or lower --stages");
  EXPECT_EQ(slots_error(mpi_config(2, 1)), "") << "no hostfile: every rank on this machine";
}

}  // namespace
}  // namespace train

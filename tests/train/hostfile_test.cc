// tests/train/hostfile_test.cc: the slots an mpirun hostfile offers (train/hostfile.h): `host slots=N`, `host` alone
// (one slot), comments and blank lines; a bad slots= value is an error naming the line.
#include "train/hostfile.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace train {
namespace {

TEST(Hostfile, CountsSlotsOfEveryHost) {
  EXPECT_EQ(count_hostfile_slots("", "h"), 0);
  EXPECT_EQ(count_hostfile_slots("node1\n", "h"), 1);
  EXPECT_EQ(count_hostfile_slots("node1 slots=4\nnode2 slots=2 max_slots=8\n", "h"), 6);
  EXPECT_EQ(count_hostfile_slots("# two hosts\n\nnode1 slots=2   # the first\n  \nnode2\n#node3 slots=9\n", "h"), 3);
  EXPECT_EQ(count_hostfile_slots("node1 slots = 3\nnode2\tslots=1", "h"), 4);  // no final newline
  EXPECT_EQ(count_hostfile_slots("node1 max_slots=8\n", "h"), 1);
}

TEST(Hostfile, BadSlotsNameTheLine) {
  for (const std::string bad : {"slots=0", "slots=x", "slots=", "slots=-2", "slots=3x"}) {
    try {
      count_hostfile_slots("node1\nnode2 " + bad + "\n", "hosts.txt");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("hostfile hosts.txt line 2: " + bad), std::string::npos) << e.what();
    }
  }
}

TEST(Hostfile, ReadsTheFile) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/hosts";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("a slots=2\nb\n", f);
  std::fclose(f);
  EXPECT_EQ(hostfile_slots(path), 3);
  EXPECT_THROW(hostfile_slots(path + ".missing"), std::invalid_argument);
}

}  // namespace
}  // namespace train

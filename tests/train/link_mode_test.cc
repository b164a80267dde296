// tests/train/link_mode_test.cc: --link-mode reaches the link emulator's config (train/run_config.cc is the one place
// that maps it), boundary by default.
#include <gtest/gtest.h>

#include "train/flags.h"
#include "train/run_config.h"

namespace train {
namespace {

TEST(LinkMode, FlagMapsToTheEmulatorsConfig) {
  const std::vector<std::string> link = {"--executor", "mpi", "--stages", "2", "--link-mbps", "10"};
  EXPECT_EQ(make_run_config(parse_flags(link)).link.mode, engine::comm::LinkMode::boundary);
  std::vector<std::string> node = link;
  node.insert(node.end(), {"--link-mode", "node"});
  const RunConfig c = make_run_config(parse_flags(node));
  EXPECT_EQ(c.link.mode, engine::comm::LinkMode::node);
  EXPECT_DOUBLE_EQ(c.link.mbps, 10.0);
}

}  // namespace
}  // namespace train

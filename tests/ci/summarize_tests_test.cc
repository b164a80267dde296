// tests/ci/summarize_tests_test.cc: CI's summary counts what this run executed and fails on what proves nothing: a
// target whose exit status failed though its XML passed, a cached result, a target with zero cases, a target that
// never ran. Each case is a hand-made build event file (one target) and GoogleTest XML, fed to the script.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace {

std::string tmp() { return std::getenv("TEST_TMPDIR"); }

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

const char kTwoCasesOneSkipped[] =
    "<testsuites><testsuite name=\"A\"><testcase classname=\"A\" name=\"one\"/>"
    "<testcase classname=\"A\" name=\"two\"/><testcase classname=\"A\" name=\"three\" result=\"skipped\">"
    "<skipped message=\"no GPU\"/></testcase></testsuite></testsuites>";

// Runs the script on one target //t:x_test whose result is `result_json` (empty: configured, never ran) and XML
// `xml`; returns its exit status and output.
std::pair<int, std::string> summarize(const std::string& tag, const std::string& result_json, const std::string& xml) {
  const std::string xml_path = tmp() + "/" + tag + ".xml", events = tmp() + "/" + tag + ".json";
  write(xml_path, xml);
  std::string bep =
      "{\"id\": {\"targetConfigured\": {\"label\": \"//t:x_test\"}}, \"configured\": {\"targetKind\": \"cc_test "
      "rule\"}}\n";
  if (!result_json.empty()) {
    bep += "{\"id\": {\"testResult\": {\"label\": \"//t:x_test\"}}, \"testResult\": {\"testActionOutput\": [{\"name\": "
           "\"test.xml\", \"uri\": \"file://" + xml_path + "\"}], " + result_json + "}}\n";
  }
  write(events, bep);
  const std::string out = tmp() + "/" + tag + ".out";
  const int status = std::system(("python3 tools/ci/summarize_tests.py " + events + " > " + out + " 2>&1").c_str());
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

TEST(SummarizeTests, CountsCasesOfAPassingTarget) {
  const auto [rc, out] = summarize("ok", "\"status\": \"PASSED\"", kTwoCasesOneSkipped);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("1 test targets; 2 passed, 0 failed, 1 skipped"), std::string::npos) << out;
  EXPECT_NE(out.find("SKIPPED //t:x_test: A.three (no GPU)"), std::string::npos) << out;
}

TEST(SummarizeTests, ExitStatusWinsOverAPassingXml) {
  const auto [rc, out] = summarize("status", "\"status\": \"FAILED\"", kTwoCasesOneSkipped);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("FAILED (target: Bazel status FAILED) //t:x_test"), std::string::npos) << out;
  EXPECT_NE(out.find("2 passed, 1 failed"), std::string::npos) << out;
}

TEST(SummarizeTests, ZeroCasesIsAFailure) {
  const auto [rc, out] = summarize("zero", "\"status\": \"PASSED\"", "<testsuites></testsuites>");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("ran zero test cases"), std::string::npos) << out;
}

TEST(SummarizeTests, CachedResultIsAFailure) {
  const auto [rc, out] = summarize("cached", "\"status\": \"PASSED\", \"cachedLocally\": true", kTwoCasesOneSkipped);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("result served from a cache, not executed"), std::string::npos) << out;
}

TEST(SummarizeTests, TargetThatNeverRanIsAFailure) {
  const auto [rc, out] = summarize("never", "", kTwoCasesOneSkipped);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("FAILED (never ran: its build failed) //t:x_test"), std::string::npos) << out;
  EXPECT_NE(out.find("0 passed, 1 failed, 0 skipped"), std::string::npos) << out;
}

}  // namespace

// tests/data/tokenizer_test.cc: GPT-2 BPE ids against an independent reference, byte round-trips, vocab errors.
#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "data/error.h"
#include "data/gpt2_vocab.h"
#include "tests/data/data_test_util.h"

namespace {

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<Case> load_cases() {
  std::ifstream in(std::string(data_test::kFixtureDir) + "/gpt2_tokenizer_cases.tsv");
  std::vector<Case> cases;
  std::string line;
  while (std::getline(in, line)) {
    const size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    Case c{from_hex(line.substr(0, tab)), {}};
    std::istringstream ids(line.substr(tab + 1));
    int32_t id;
    while (ids >> id) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mirror_ = data_test::data_mirror();
    if (mirror_.empty()) GTEST_SKIP() << data_test::kNoMirror;
    tok_ = std::make_unique<data::Tokenizer>(data::Tokenizer::from_dir(mirror_ + "/gpt2"));
  }
  std::string mirror_;
  std::unique_ptr<data::Tokenizer> tok_;
};

// Expected ids come from tools/data/gpt2_bpe_reference.py (an independent plain-Python reimplementation of OpenAI's
// encoder.py on Python's `re` engine), written to the fixture by tools/data/make_tokenizer_fixture.py.
TEST_F(TokenizerTest, IdsMatchIndependentReferenceOnTrickyText) {
  const std::vector<Case> cases = load_cases();
  ASSERT_GE(cases.size(), 30u) << "fixture missing: " << data_test::kFixtureDir;
  data::EncodeState state(*tok_);
  for (const Case& c : cases) {
    std::vector<int32_t> ids;
    tok_->encode(c.text, &state, &ids);
    EXPECT_EQ(ids, c.ids) << "text: '" << c.text << "'";
    EXPECT_EQ(tok_->decode(ids), c.text);
    EXPECT_EQ(tok_->encode(c.text), c.ids) << "a fresh EncodeState (empty cache) must agree: '" << c.text << "'";
  }
}

TEST_F(TokenizerTest, EndOfTextIsNeverProducedFromText) {
  const std::vector<int32_t> ids = tok_->encode("a<|endoftext|>b <|endoftext|>");
  for (int32_t id : ids) EXPECT_NE(id, data::Tokenizer::kEndOfText);
  EXPECT_EQ(tok_->decode(ids), "a<|endoftext|>b <|endoftext|>");
  EXPECT_EQ(tok_->vocab_size(), 50257);
  EXPECT_EQ(tok_->token_bytes(data::Tokenizer::kEndOfText), "<|endoftext|>");
}

TEST_F(TokenizerTest, RandomBytesIncludingInvalidUtf8RoundTrip) {
  std::mt19937 rng(1234);
  data::EncodeState state(*tok_);
  const std::string pieces[] = {"\xC3\xA9", "\xE4\xBD\xA0", "\xF0\x9F\x98\x80", "\xC3", "\xE4\xBD", "\xF0\x9F",
                                "\x80", "\xFF", "\xED\xA0\x80", "\xC0\xAF", " ", "\n\n", "'s", "ab"};
  for (int iter = 0; iter < 500; ++iter) {
    std::string text;
    const int len = static_cast<int>(rng() % 64);
    for (int i = 0; i < len; ++i) {
      if (rng() % 2) text.push_back(static_cast<char>(rng() % 256));
      else text += pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
    }
    std::vector<int32_t> ids;
    tok_->encode(text, &state, &ids);
    for (int32_t id : ids) ASSERT_LT(id, data::Tokenizer::kEndOfText);
    ASSERT_EQ(tok_->decode(ids), text) << "iteration " << iter;
  }
}

TEST_F(TokenizerTest, LongRunsDoNotOverflowTheMatcher) {
  const std::string spaces(200000, ' ');
  const std::string letters(20000, 'a');
  const std::string text = "x" + spaces + "y\n" + letters + std::string(50000, '\n');
  EXPECT_EQ(tok_->decode(tok_->encode(text)), text);
}

TEST_F(TokenizerTest, DecodeRejectsOutOfRangeIds) {
  const std::vector<int32_t> bad = {15496, 50257};
  EXPECT_THROW(tok_->decode(bad), data::DataError);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(tok_->decode(negative), data::DataError);
}

// Vocab errors need no mirror: the files are small fakes.
TEST(TokenizerVocabErrors, MissingFilesAreNamed) {
  try {
    data::Tokenizer::from_files("/nonexistent/encoder.json", "/nonexistent/vocab.bpe");
    FAIL() << "expected DataError";
  } catch (const data::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/encoder.json"), std::string::npos) << e.what();
  }
}

TEST(TokenizerVocabErrors, MalformedJsonAndMergesAreReported) {
  const std::string dir = data_test::fresh_dir("vocab_errors");
  data_test::write_bytes(dir + "/bad.json", "{\"a\": 0, \"b\" 1}");
  data_test::write_bytes(dir + "/vocab.bpe", "#version: 0.2\na b\n");
  EXPECT_THROW(data::Tokenizer::from_files(dir + "/bad.json", dir + "/vocab.bpe"), data::DataError);
  // A well-formed JSON that lacks byte tokens is not a byte-level BPE vocab.
  data_test::write_bytes(dir + "/small.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}");
  EXPECT_THROW(data::Tokenizer::from_files(dir + "/small.json", dir + "/vocab.bpe"), data::DataError);
  data_test::write_bytes(dir + "/bad.bpe", "#version: 0.2\nab\n");
  EXPECT_THROW(data::load_gpt2_vocab(dir + "/small.json", dir + "/bad.bpe"), data::DataError);
}

TEST(GptJson, ParsesEscapesAndSurrogatePairs) {
  const auto entries = data::parse_flat_json_object(
      "{ \"\\u0120the\": 262, \"\\\"q\\\\\": 1, \"\\ud83d\\ude00\": 7 , \"\\/\\n\": 3}", "inline");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].first, "\xC4\xA0the");  // U+0120 in UTF-8
  EXPECT_EQ(entries[0].second, 262);
  EXPECT_EQ(entries[1].first, "\"q\\");
  EXPECT_EQ(entries[2].first, "\xF0\x9F\x98\x80");  // U+1F600
  EXPECT_EQ(entries[3].first, "/\n");
  EXPECT_THROW(data::parse_flat_json_object("{\"a\": 1", "inline"), data::DataError);
  EXPECT_THROW(data::parse_flat_json_object("{\"\\ud83d\": 1}", "inline"), data::DataError);
  EXPECT_THROW(data::parse_flat_json_object("{\"a\": 1} x", "inline"), data::DataError);
}

TEST(GptByteToUnicode, IsABijectionKeepingPrintableBytes) {
  const auto table = data::gpt2_byte_to_unicode();
  EXPECT_EQ(table['A'], U'A');
  EXPECT_EQ(table[' '], char32_t{0x120});  // GPT-2's visible space, "Ġ"
  std::vector<char32_t> sorted(table.begin(), table.end());
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
}

}  // namespace

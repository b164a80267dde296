#!/usr/bin/env bash
# tools/data/sanitize_data_tests.sh: builds the data tests with AddressSanitizer + UndefinedBehaviorSanitizer (plain
# g++, outside Bazel so the shared Bazel server keeps its flags) and runs them. Any report aborts with a non-zero exit.
#   tools/data/sanitize_data_tests.sh [MIRROR_DIR]      (default: $RESBM_DATA_MIRROR, else ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
mirror="${1:-${RESBM_DATA_MIRROR:-../shared/data}}"
out="$(mktemp -d /tmp/resbm_sanitize.XXXXXX)"
trap 'rm -rf "$out"' EXIT
g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -DPCRE2_CODE_UNIT_WIDTH=8 -I. \
  data/gpt2_vocab.cc data/tokenizer.cc data/shards.cc data/loader.cc data/sha256.cc data/prepare.cc \
  data/split_writer.cc tests/data/fuzz_test.cc tests/data/tokenizer_test.cc tests/data/shards_test.cc \
  tests/data/loader_test.cc tests/data/prepare_test.cc tests/data/split_writer_test.cc \
  -lgtest_main -lgtest -lpcre2-8 -lpthread -o "$out/data_tests"
RESBM_DATA_MIRROR="$(realpath "$mirror")" TEST_TMPDIR="$out" "$out/data_tests"

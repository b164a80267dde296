#!/usr/bin/env python3
"""tools/data/make_tokenizer_fixture.py: regenerates the fixtures in tests/data/testdata/, computed by the independent
reference tools/data/gpt2_bpe_reference.py (never by the C++ code under test):

  gpt2_tokenizer_cases.tsv      expected GPT-2 ids of tricky strings; each line: the input's UTF-8 bytes as hex, a
                                tab, the ids separated by spaces
  tinyshakespeare_expected.txt  llm.c's tinyshakespeare layout: token counts, SHA-256 of both shard files, the first
                                and last 16 tokens of each split

  python3 tools/data/make_tokenizer_fixture.py --mirror ../shared/data
"""
import argparse
import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_bpe_reference import Encoder, tinyshakespeare  # noqa: E402

CASES = [
    "Hello world",
    "I'm sure you're right; it's what we'd've done, they'll say. He's 'tis",
    "DON'T SHOUT, don't Shout 's 't 're 've 'm 'll 'd",
    "a  b   c    d",
    "trailing spaces   ",
    "   leading spaces",
    "line\nline\n\nparagraph\n\n\n\nend\n",
    "\n\n\n",
    " \n \n  \n",
    "tab\there\t\tdouble\t \tmixed",
    "\r\n windows\r\nline\r\n",
    "digits 0 12 345 6789 1234567890 3.14159 -42 1,000,000",
    "Unicode digits: \u0663\u0664 \u00bd \u2167 \uff11\uff12",
    "!!! ??? ... --- *** ;;; ()[]{} <<>> @#$%^&*",
    "email@example.com https://example.org/path?q=1&r=2#frag",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00e0 la fa\u00e7ade Stra\u00dfe \u00c5ngstr\u00f6m",
    "e\u0301 combining accent and \u0627\u0644\u0639\u0631\u0628\u064a\u0629 Arabic",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u6f22\u5b57\u3068\u304b\u306a\u3068\u30ab\u30ca \ud55c\uad6d\uc5b4",
    "emoji \U0001F600\U0001F44D\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467 \u2764\ufe0f flags \U0001F1EB\U0001F1F7",
    "<|endoftext|>",
    "text<|endoftext|>more <|endoftext|> end",
    "nbsp\u00a0here ideographic\u3000space nel\u0085here",
    "mongolian\u180evowel separator, \u180e!\u180e \u180e\n",
    "a \u0085b next line",
    "file\x1cgroup\x1frecord unit separators",
    "zero\u200bwidth\u200cjoiners",
    "CamelCaseIdentifier snake_case_name kebab-case-name",
    "    def f(x):\n        return x ** 2  # square\n",
    "\u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430 \u05e2\u05d1\u05e8\u05d9\u05ea",
    "",
    " ",
    "'",
    "''''",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "control \x00\x01\x07\x7f chars",
]


def write_tinyshakespeare_expected(encoder, mirror, out_path):
    with tempfile.TemporaryDirectory() as tmp:
        tinyshakespeare(encoder, os.path.join(mirror, "tinyshakespeare", "input.txt"), tmp)
        lines = []
        for split in ("val", "train"):
            with open(os.path.join(tmp, f"tiny_shakespeare_{split}.bin"), "rb") as f:
                blob = f.read()
            tokens = [int.from_bytes(blob[i:i + 2], "little") for i in range(1024, len(blob), 2)]
            lines.append(f"{split}_tokens {len(tokens)}")
            lines.append(f"{split}_sha256 {hashlib.sha256(blob).hexdigest()}")
            lines.append(f"{split}_first " + " ".join(map(str, tokens[:16])))
            lines.append(f"{split}_last " + " ".join(map(str, tokens[-16:])))
    with open(out_path, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mirror", required=True, help="directory with gpt2/ and tinyshakespeare/")
    parser.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                          "tests", "data", "testdata"))
    args = parser.parse_args()
    encoder = Encoder(os.path.join(args.mirror, "gpt2"))
    os.makedirs(args.out_dir, exist_ok=True)
    cases_path = os.path.join(args.out_dir, "gpt2_tokenizer_cases.tsv")
    with open(cases_path, "w", encoding="ascii") as f:
        for text in CASES:
            ids = encoder.encode(text)
            f.write(text.encode("utf-8").hex() + "\t" + " ".join(map(str, ids)) + "\n")
    print(f"wrote {len(CASES)} cases to {cases_path}")
    expected_path = os.path.join(args.out_dir, "tinyshakespeare_expected.txt")
    write_tinyshakespeare_expected(encoder, args.mirror, expected_path)
    print(f"wrote {expected_path}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""tools/data/gpt2_bpe_reference.py: an independent, plain-Python GPT-2 BPE (a reimplementation of OpenAI's
encoder.py) used as the oracle for the C++ tokenizer; also writes tinyshakespeare the way llm.c does.

It shares no code with data/tokenizer.cc: the pre-tokenisation regex runs on Python's `re` engine, with \\p{L} and
\\p{N} built from unicodedata.category (L*, N*) and \\s spelled as Unicode's White_Space property (what the `regex`
module in encoder.py and tiktoken's Rust regex use; Python's own \\s differs on U+001C..U+001F).

  gpt2_bpe_reference.py encode --vocab-dir DIR TEXT_FILE          prints the ids, one line
  gpt2_bpe_reference.py tinyshakespeare --vocab-dir DIR INPUT OUT_DIR
      writes tiny_shakespeare_val.bin / tiny_shakespeare_train.bin as llm.c's dev/data/tinyshakespeare.py does
"""
import argparse
import json
import os
import re
import struct
import sys
import unicodedata

END_OF_TEXT = 50256

# Unicode White_Space (PropList.txt): the code points `\s` means in the reference regex engines.
WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
               (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]


def _ranges_where(predicate):
    ranges, start = [], None
    for cp in range(0x110000):
        if predicate(cp):
            if start is None:
                start = cp
        elif start is not None:
            ranges.append((start, cp - 1))
            start = None
    if start is not None:
        ranges.append((start, 0x10FFFF))
    return ranges


def _class_body(ranges):
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


def gpt2_pattern():
    letters = _class_body(_ranges_where(lambda cp: unicodedata.category(chr(cp)).startswith("L")))
    numbers = _class_body(_ranges_where(lambda cp: unicodedata.category(chr(cp)).startswith("N")))
    space = _class_body(WHITE_SPACE)
    # encoder.py: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    return re.compile(f"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{space}{letters}{numbers}]+"
                      f"|[{space}]+(?![^{space}])|[{space}]+")


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Encoder:
    def __init__(self, vocab_dir):
        with open(os.path.join(vocab_dir, "encoder.json"), "r", encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(vocab_dir, "vocab.bpe"), "r", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1:] if line]
        self.ranks = {pair: rank for rank, pair in reversed(list(enumerate(merges)))}
        self.byte_encoder = bytes_to_unicode()
        self.pattern = gpt2_pattern()
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == best[0] and parts[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def encode(self, text):
        ids = []
        for piece in self.pattern.findall(text):
            word = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[token] for token in self.bpe(word))
        return ids


def write_llmc_shard(path, tokens):
    """llm.c's data_common.write_datafile for gpt-2: 256 int32 header (magic, version, count), then uint16."""
    header = [20240520, 1, len(tokens)] + [0] * 253
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack(f"<{len(tokens)}H", *tokens))


def tinyshakespeare(encoder, input_path, out_dir):
    """llm.c: text = "<|endoftext|>" + text, "\\n\\n" -> "\\n\\n<|endoftext|>", encode with the special allowed."""
    with open(input_path, "r", encoding="utf-8") as f:
        text = f.read()
    tokens = []
    for section in ("<|endoftext|>" + text.replace("\n\n", "\n\n<|endoftext|>")).split("<|endoftext|>")[1:]:
        tokens.append(END_OF_TEXT)
        tokens.extend(encoder.encode(section))
    os.makedirs(out_dir, exist_ok=True)
    write_llmc_shard(os.path.join(out_dir, "tiny_shakespeare_val.bin"), tokens[:32768])
    write_llmc_shard(os.path.join(out_dir, "tiny_shakespeare_train.bin"), tokens[32768:])
    print(f"val {len(tokens[:32768])} tokens, train {len(tokens[32768:])} tokens")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["encode", "tinyshakespeare"])
    parser.add_argument("--vocab-dir", required=True)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    encoder = Encoder(args.vocab_dir)
    if args.command == "encode":
        with open(args.paths[0], "r", encoding="utf-8") as f:
            print(" ".join(map(str, encoder.encode(f.read()))))
    else:
        if len(args.paths) != 2:
            sys.exit("usage: tinyshakespeare --vocab-dir DIR INPUT OUT_DIR")
        tinyshakespeare(encoder, args.paths[0], args.paths[1])


if __name__ == "__main__":
    main()

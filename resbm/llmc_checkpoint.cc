// resbm/llmc_checkpoint.cc: llm.c model file format (fp32, version 3): header checks, load by name, atomic save.
#include "resbm/llmc_checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"

namespace resbm {
namespace {

using engine::ParamStore;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw LlmcCheckpointError("llm.c checkpoint '" + path + "': " + what);
}

struct FileCloser {
  void operator()(FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};
using File = std::unique_ptr<FILE, FileCloser>;

int64_t layout_numel(const GPT2Config& config) {
  int64_t n = 0;
  for (const NamedShape& s : gpt2_llmc_layout(config)) n += s.numel();
  return n;
}

// Header -> config, with every check that needs only the header and the file's size.
GPT2Config parse_header(const std::string& path, const int32_t* h, int64_t file_bytes) {
  if (h[0] != kLlmcModelMagic) {
    fail(path, "bad magic " + std::to_string(h[0]) + ", expected " + std::to_string(kLlmcModelMagic) +
                   " (an llm.c model file; token shards use 20240520, optimizer state 20240327)");
  }
  if (h[1] != kLlmcModelVersionFp32) {
    fail(path, "unsupported version " + std::to_string(h[1]) + ", expected " +
                   std::to_string(kLlmcModelVersionFp32) +
                   " (fp32 weights; llm.c's version 5 is bf16: export fp32 with llm.c's train_gpt2.py)");
  }
  GPT2Config c;
  c.max_seq_len = h[2];
  c.vocab_size = h[3];
  c.num_layers = h[4];
  c.num_heads = h[5];
  c.channels = h[6];
  c.padded_vocab_size = h[7];
  try {
    validate_config(c);
  } catch (const std::invalid_argument& e) {
    fail(path, std::string("header describes no valid model: ") + e.what());
  }
  // Guard the size arithmetic against absurd headers before trusting it (1e12 floats = 4 TB).
  if (int64_t{c.padded_vocab_size} * c.channels > int64_t{1} << 40 || int64_t{c.num_layers} * c.channels > 1 << 30) {
    fail(path, "header describes an implausibly large model (" + describe_config(c) + ")");
  }
  const int64_t expected = int64_t{kLlmcHeaderInts} * 4 + layout_numel(c) * 4;
  if (file_bytes != expected) {
    fail(path, std::string(file_bytes < expected ? "truncated" : "has trailing data") + ": " +
                   std::to_string(file_bytes) + " bytes, expected " + std::to_string(expected) +
                   " (1024-byte header + " + std::to_string(layout_numel(c)) + " fp32 parameters for " +
                   describe_config(c) + ")");
  }
  return c;
}

// Opens the file, reads and checks its header; leaves the stream positioned at the first parameter.
File open_checked(const std::string& path, GPT2Config* config) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
  struct stat st;
  if (fstat(fileno(f.get()), &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
  int32_t header[kLlmcHeaderInts];
  if (st.st_size < int64_t{sizeof(header)}) {
    fail(path, "truncated header: " + std::to_string(st.st_size) + " bytes, expected at least " +
                   std::to_string(sizeof(header)) + " (256 int32)");
  }
  if (std::fread(header, sizeof(header), 1, f.get()) != 1) fail(path, "read error in the header");
  *config = parse_header(path, header, st.st_size);
  return f;
}

bool same_config(const GPT2Config& a, const GPT2Config& b) {
  return a.max_seq_len == b.max_seq_len && a.vocab_size == b.vocab_size &&
         a.padded_vocab_size == b.padded_vocab_size && a.num_layers == b.num_layers &&
         a.num_heads == b.num_heads && a.channels == b.channels;
}

// The store's parameter for a layout entry, checked for size and dtype; -1 when absent.
int find_param(const std::string& path, const ParamStore& store, const NamedShape& s) {
  const int index = store.find(s.name);
  if (index < 0) return -1;
  const engine::Tensor& v = store.param(index).var.value;
  if (v.numel() != s.numel() || v.dtype != engine::DType::f32) {
    fail(path, "parameter '" + s.name + "' in the model is " + v.describe() + ", the file holds " +
                   std::to_string(s.numel()) + " fp32 values for it");
  }
  return index;
}

}  // namespace

GPT2Config read_llmc_config(const std::string& path) {
  GPT2Config c;
  open_checked(path, &c);
  return c;
}

int load_llmc_checkpoint(const std::string& path, ParamStore& store, const GPT2Config& expected,
                         bool allow_missing) {
  GPT2Config c;
  File f = open_checked(path, &c);
  if (!same_config(c, expected)) {
    fail(path, "holds a model with " + describe_config(c) + ", expected " + describe_config(expected));
  }
  const std::vector<NamedShape> layout = gpt2_llmc_layout(c);
  // Resolve every tensor before reading any, so that a mismatch leaves the store untouched.
  std::vector<int> indices;
  for (const NamedShape& s : layout) {
    const int index = find_param(path, store, s);
    if (index < 0 && !allow_missing) fail(path, "the model has no parameter '" + s.name + "' to load into");
    indices.push_back(index);
  }
  // Read into a staging buffer first: a read error or a non-finite value then also leaves the store untouched.
  std::vector<std::vector<float>> staged(layout.size());
  for (size_t i = 0; i < layout.size(); ++i) {
    const NamedShape& s = layout[i];
    if (indices[i] < 0) {
      if (std::fseek(f.get(), static_cast<long>(s.numel() * 4), SEEK_CUR) != 0) fail(path, "seek error");
      continue;
    }
    staged[i].resize(s.numel());
    if (std::fread(staged[i].data(), 4, s.numel(), f.get()) != static_cast<size_t>(s.numel())) {
      fail(path, "read error in tensor '" + s.name + "'");
    }
    for (int64_t j = 0; j < s.numel(); ++j) {
      if (!std::isfinite(staged[i][j])) {
        fail(path, "tensor '" + s.name + "' element " + std::to_string(j) + " is not finite (" +
                       std::to_string(staged[i][j]) + "): the file is corrupt");
      }
    }
  }
  int loaded = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    if (indices[i] < 0) continue;
    engine::copy_from_host(store.var(indices[i]).value, staged[i].data());
    ++loaded;
  }
  store.sync_model_copy();  // bf16 policy: the copy from the loaded masters (a no-op under fp32)
  return loaded;
}

void save_llmc_checkpoint(const std::string& path, const ParamStore& store, const GPT2Config& config) {
  validate_config(config);
  const std::vector<NamedShape> layout = gpt2_llmc_layout(config);
  std::vector<int> indices;
  for (const NamedShape& s : layout) {
    const int index = find_param(path, store, s);
    if (index < 0) fail(path, "cannot save: the model has no parameter '" + s.name + "'");
    indices.push_back(index);
  }
  int32_t header[kLlmcHeaderInts] = {};
  header[0] = kLlmcModelMagic;
  header[1] = kLlmcModelVersionFp32;
  header[2] = config.max_seq_len;
  header[3] = config.vocab_size;
  header[4] = config.num_layers;
  header[5] = config.num_heads;
  header[6] = config.channels;
  header[7] = config.padded_vocab_size;

  const std::string tmp = path + ".tmp";
  File f(std::fopen(tmp.c_str(), "wb"));
  if (!f) fail(path, "cannot open '" + tmp + "' for writing: " + std::strerror(errno));
  bool ok = std::fwrite(header, sizeof(header), 1, f.get()) == 1;
  std::vector<float> host;  // one tensor at a time: the store may live on a GPU
  for (size_t i = 0; ok && i < layout.size(); ++i) {
    const engine::Tensor& v = store.param(indices[i]).var.value;
    host.resize(v.numel());
    engine::copy_to_host(host.data(), v);
    ok = std::fwrite(host.data(), 4, host.size(), f.get()) == host.size();
  }
  ok = ok && std::fflush(f.get()) == 0 && fsync(fileno(f.get())) == 0;
  const int write_errno = errno;
  ok = (std::fclose(f.release()) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    fail(path, std::string("write to '") + tmp + "' failed: " + std::strerror(write_errno) +
                   " (disk full or read-only directory?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    fail(path, "cannot rename '" + tmp + "' into place: " + std::strerror(e));
  }
}

void load_llmc_checkpoint(const std::string& path, GPT2& model) {
  load_llmc_checkpoint(path, model.params(), model.config(), false);
}

void save_llmc_checkpoint(const std::string& path, const GPT2& model) {
  save_llmc_checkpoint(path, model.params(), model.config());
}

}  // namespace resbm

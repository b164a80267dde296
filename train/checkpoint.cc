// train/checkpoint.cc: checkpoint file format, atomic write, verified read, listing and pruning.
#include "train/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace train {
namespace {

constexpr char kMagic[8] = {'R', 'E', 'S', 'B', 'M', 'C', 'K', 'P'};
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8;

std::string errno_text() { return std::strerror(errno); }

void append(std::vector<uint8_t>& out, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + size);
}

// Writes all of buf to fd, retrying short writes.
void write_all(int fd, const uint8_t* buf, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, buf, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError("cannot write checkpoint " + path + ": " + errno_text() + " (disk full?)");
    }
    buf += n;
    size -= static_cast<size_t>(n);
  }
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

uint64_t fnv1a64(const void* data, size_t size, uint64_t hash) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= p[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

void CheckpointWriter::add(const std::string& name, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  sections_.emplace_back(name, std::vector<uint8_t>(p, p + size));
}

uint64_t CheckpointWriter::save(const std::string& path) const {
  std::vector<uint8_t> payload;
  for (const auto& s : sections_) {
    const uint32_t name_len = static_cast<uint32_t>(s.first.size());
    const uint64_t size = s.second.size();
    append(payload, &name_len, sizeof(name_len));
    append(payload, s.first.data(), s.first.size());
    append(payload, &size, sizeof(size));
    append(payload, s.second.data(), s.second.size());
  }
  std::vector<uint8_t> header;
  const uint32_t version = kCheckpointVersion;
  const uint32_t num_sections = static_cast<uint32_t>(sections_.size());
  const uint64_t payload_bytes = payload.size();
  const uint64_t checksum = fnv1a64(payload.data(), payload.size());
  append(header, kMagic, sizeof(kMagic));
  append(header, &version, sizeof(version));
  append(header, &num_sections, sizeof(num_sections));
  append(header, &payload_bytes, sizeof(payload_bytes));
  append(header, &checksum, sizeof(checksum));

  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw CheckpointError("cannot create " + tmp + ": " + errno_text() + "; check --out-dir");
  try {
    write_all(fd, header.data(), header.size(), tmp);
    write_all(fd, payload.data(), payload.size(), tmp);
    // The data must be on disk before the rename makes it the checkpoint, or a crash could leave a renamed but
    // empty file.
    if (::fsync(fd) != 0) throw CheckpointError("fsync of " + tmp + " failed: " + errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) throw CheckpointError("close of " + tmp + " failed: " + errno_text());
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw CheckpointError("cannot rename " + tmp + " to " + path + ": " + errno_text());
  }
  // The rename itself lives in the directory entry; fsync the directory so it survives a power loss.
  const std::string dir = parent_dir(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return checksum;
}

Checkpoint Checkpoint::load(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw CheckpointError("cannot open checkpoint " + path + ": " + errno_text());
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  const bool read_error = std::ferror(f) != 0;
  std::fclose(f);
  if (read_error) throw CheckpointError("cannot read checkpoint " + path + ": " + errno_text());

  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    throw CheckpointError(path + " is not a resbm checkpoint (bad magic or shorter than the header)");
  }
  uint32_t version, num_sections;
  uint64_t payload_bytes, checksum;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&num_sections, bytes.data() + 12, 4);
  std::memcpy(&payload_bytes, bytes.data() + 16, 8);
  std::memcpy(&checksum, bytes.data() + 24, 8);
  if (version != kCheckpointVersion) {
    throw CheckpointError(path + " has checkpoint version " + std::to_string(version) + ", this build reads " +
                          std::to_string(kCheckpointVersion));
  }
  if (bytes.size() - kHeaderBytes != payload_bytes) {
    throw CheckpointError(path + " is truncated or padded: header says " + std::to_string(payload_bytes) +
                          " payload bytes, file has " + std::to_string(bytes.size() - kHeaderBytes) +
                          "; delete it to resume from the previous checkpoint");
  }
  const uint8_t* p = bytes.data() + kHeaderBytes;
  if (fnv1a64(p, payload_bytes) != checksum) {
    throw CheckpointError(path + " is corrupt (checksum mismatch); delete it to resume from the previous checkpoint");
  }
  Checkpoint ckpt;
  ckpt.path_ = path;
  ckpt.checksum_ = checksum;
  const uint8_t* end = p + payload_bytes;
  for (uint32_t i = 0; i < num_sections; ++i) {
    uint32_t name_len;
    uint64_t size;
    // The checksum passed, so a malformed table means a writer bug; still check bounds rather than trust it.
    if (end - p < 4) throw CheckpointError(path + ": section table overruns the file");
    std::memcpy(&name_len, p, 4);
    p += 4;
    if (static_cast<uint64_t>(end - p) < name_len + 8ull) throw CheckpointError(path + ": section overruns the file");
    std::string name(reinterpret_cast<const char*>(p), name_len);
    p += name_len;
    std::memcpy(&size, p, 8);
    p += 8;
    if (static_cast<uint64_t>(end - p) < size) throw CheckpointError(path + ": section " + name + " overruns the file");
    ckpt.sections_[name] = std::vector<uint8_t>(p, p + size);
    p += size;
  }
  return ckpt;
}

const std::vector<uint8_t>& Checkpoint::get(const std::string& name) const {
  auto it = sections_.find(name);
  if (it == sections_.end()) {
    throw CheckpointError(path_ + " has no section '" + name + "' (written by another version of the trainer?)");
  }
  return it->second;
}

void Checkpoint::read_into(const std::string& name, void* dst, size_t size) const {
  const auto& s = get(name);
  if (s.size() != size) {
    throw CheckpointError(path_ + ": section '" + name + "' holds " + std::to_string(s.size()) +
                          " bytes, this run expects " + std::to_string(size) +
                          " (different model or optimizer flags than the run that wrote it?)");
  }
  if (size > 0) std::memcpy(dst, s.data(), size);
}

uint64_t Checkpoint::get_u64(const std::string& name) const {
  uint64_t v;
  read_into(name, &v, sizeof(v));
  return v;
}

std::string Checkpoint::get_string(const std::string& name) const {
  const auto& s = get(name);
  return std::string(s.begin(), s.end());
}

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "ckpt_%08lld.bin", static_cast<long long>(step));
  return dir + "/" + name;
}

std::string stage_checkpoint_path(const std::string& dir, int64_t step, int stage, int replica) {
  char name[64];
  if (replica < 0) {
    std::snprintf(name, sizeof(name), "ckpt_%08lld.stage%d.bin", static_cast<long long>(step), stage);
  } else {
    std::snprintf(name, sizeof(name), "ckpt_%08lld.replica%d.stage%d.bin", static_cast<long long>(step), replica,
                  stage);
  }
  return dir + "/" + name;
}

namespace {

// The names of a checkpoint directory.
std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) out.emplace_back(e->d_name);
  ::closedir(d);
  return out;
}

// The step of a stage file's name ckpt_<8 digits>.stage<s>.bin, or -1.
int64_t stage_file_step(const std::string& name) {
  long long step;
  int replica, stage, consumed = 0;
  if (name.size() >= 20 && std::sscanf(name.c_str(), "ckpt_%8lld.stage%d.bin%n", &step, &stage, &consumed) == 2 &&
      consumed == static_cast<int>(name.size())) {
    return step;
  }
  consumed = 0;
  if (name.size() >= 28 &&
      std::sscanf(name.c_str(), "ckpt_%8lld.replica%d.stage%d.bin%n", &step, &replica, &stage, &consumed) == 3 &&
      consumed == static_cast<int>(name.size())) {
    return step;
  }
  return -1;
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const std::string& name : dir_entries(dir)) {
    long long step;
    char tail[8] = {0};
    // Exactly ckpt_<digits>.bin; .tmp files (a write in progress or interrupted) and stage files are not listed.
    if (name.size() == 17 && std::sscanf(name.c_str(), "ckpt_%8lld%4s", &step, tail) == 2 &&
        std::string(tail) == ".bin") {
      out.emplace_back(step, dir + "/" + name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void prune_checkpoints(const std::string& dir, int keep_last, int64_t keep_step) {
  const auto all = list_checkpoints(dir);
  std::vector<int64_t> kept;
  for (size_t i = 0; i < all.size(); ++i) {
    if (i + static_cast<size_t>(keep_last) < all.size() && all[i].first != keep_step) {
      ::unlink(all[i].second.c_str());  // the manifest first: the checkpoint is gone before its files are
    } else {
      kept.push_back(all[i].first);
    }
  }
  const int64_t newest = kept.empty() ? -1 : kept.back();
  for (const std::string& name : dir_entries(dir)) {
    const bool tmp = name.rfind("ckpt_", 0) == 0 && name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
    const int64_t step = stage_file_step(name);
    const bool orphan = step >= 0 && step <= newest && std::find(kept.begin(), kept.end(), step) == kept.end();
    if (tmp || orphan) ::unlink((dir + "/" + name).c_str());
  }
}

void make_dirs(const std::string& dir) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      throw CheckpointError("cannot create directory " + partial + ": " + errno_text());
    }
  }
}

}  // namespace train

// data/shards.cc: atomic shard writer, validating shard reader, and glob expansion.
#include "data/shards.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "data/error.h"

namespace data {
namespace {

// Closes a file descriptor when it goes out of scope (on exceptions too).
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

void write_all(int fd, const void* data, size_t bytes, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) DATA_FAIL("cannot write " << path << ": " << std::strerror(errno) << "; check free disk space");
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_shard(const std::string& path, const uint16_t* tokens, size_t count) {
  if (count > static_cast<size_t>(INT32_MAX)) DATA_FAIL(path << ": " << count << " tokens do not fit one shard");
  int32_t header[kShardHeaderInts] = {};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = static_cast<int32_t>(count);

  std::string temp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(&temp[0]);
  if (fd < 0) {
    DATA_FAIL("cannot create a temp file next to " << path << ": " << std::strerror(errno)
                                                    << "; does the directory exist and is it writable?");
  }
  try {
    FdCloser closer{fd};
    ::fchmod(fd, 0644);  // mkstemp makes 0600; shards are ordinary data files
    write_all(fd, header, sizeof(header), temp);
    write_all(fd, tokens, count * sizeof(uint16_t), temp);
    if (::fsync(fd) != 0) DATA_FAIL("fsync of " << temp << " failed: " << std::strerror(errno));
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    DATA_FAIL("cannot rename " << temp << " to " << path << ": " << std::strerror(err));
  }
  // The rename itself is durable only once the directory entry is flushed.
  const int dir_fd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

void write_shard(const std::string& path, const std::vector<int32_t>& tokens) {
  std::vector<uint16_t> narrow(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] > UINT16_MAX) {
      DATA_FAIL(path << ": token " << tokens[i] << " at position " << i
                     << " does not fit the uint16 shard format (GPT-2 ids are 0..50256)");
    }
    narrow[i] = static_cast<uint16_t>(tokens[i]);
  }
  write_shard(path, narrow.data(), narrow.size());
}

ShardInfo read_shard_header(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    DATA_FAIL("cannot open shard " << path << ": " << std::strerror(errno)
                                   << "; check the path or glob (create shards with tools/prepare or tools/tokenize)");
  }
  FdCloser closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) DATA_FAIL("cannot stat shard " << path << ": " << std::strerror(errno));
  int32_t header[kShardHeaderInts];
  if (st.st_size < kShardHeaderBytes || ::pread(fd, header, sizeof(header), 0) != kShardHeaderBytes) {
    DATA_FAIL("shard " << path << " is truncated: " << st.st_size << " bytes, shorter than the " << kShardHeaderBytes
                       << "-byte header; regenerate it");
  }
  if (header[0] != kShardMagic) {
    DATA_FAIL("shard " << path << " has magic " << header[0] << ", expected " << kShardMagic
                       << " (llm.c GPT-2 token shard); is this a token shard (not a model or a llama-3 shard)?");
  }
  if (header[1] != kShardVersion) {
    DATA_FAIL("shard " << path << " has version " << header[1] << ", expected " << kShardVersion
                       << " (uint16 GPT-2 tokens); regenerate it with tools/tokenize");
  }
  if (header[2] < 0) DATA_FAIL("shard " << path << " has a negative token count " << header[2] << "; regenerate it");
  const int64_t expected = kShardHeaderBytes + 2 * static_cast<int64_t>(header[2]);
  if (st.st_size != expected) {
    DATA_FAIL("shard " << path << " is " << st.st_size << " bytes but its header says " << header[2]
                       << " tokens (" << expected << " bytes): truncated or corrupt; regenerate it");
  }
  return ShardInfo{path, header[2]};
}

void check_token_ids(const uint16_t* ids, size_t count, int32_t vocab_size, const std::string& path,
                     int64_t first_position) {
  for (size_t i = 0; i < count; ++i) {
    if (ids[i] >= vocab_size) {
      DATA_FAIL("shard " << path << " has token id " << ids[i] << " at token " << first_position + static_cast<int64_t>(i)
                         << ", outside the vocab (size " << vocab_size << "); was it made with another tokenizer?");
    }
  }
}

void pread_tokens(int fd, int64_t first_token, size_t count, uint16_t* out, const std::string& path) {
  const size_t bytes = count * sizeof(uint16_t);
  const off_t offset = kShardHeaderBytes + static_cast<off_t>(first_token) * 2;
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pread(fd, reinterpret_cast<char*>(out) + done, bytes - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) DATA_FAIL("cannot read shard " << path << " at byte " << offset + done << " (did it shrink?)");
    done += static_cast<size_t>(n);
  }
}

std::vector<uint16_t> read_shard(const std::string& path, int32_t vocab_size) {
  const ShardInfo info = read_shard_header(path);
  std::vector<uint16_t> tokens(static_cast<size_t>(info.num_tokens));
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) DATA_FAIL("cannot open shard " << path << ": " << std::strerror(errno));
  FdCloser closer{fd};
  pread_tokens(fd, 0, tokens.size(), tokens.data(), path);
  check_token_ids(tokens.data(), tokens.size(), vocab_size, path, 0);
  return tokens;
}

std::vector<std::string> glob_files(const std::string& pattern) {
  glob_t result;
  std::memset(&result, 0, sizeof(result));
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &result);
  std::vector<std::string> files;
  if (rc == 0) {
    for (size_t i = 0; i < result.gl_pathc; ++i) files.emplace_back(result.gl_pathv[i]);
  }
  ::globfree(&result);
  if (rc == GLOB_NOMATCH || (rc == 0 && files.empty())) {
    DATA_FAIL("no files match " << pattern << "; check the pattern (quote it in the shell) or run tools/prepare first");
  }
  if (rc != 0) DATA_FAIL("glob(" << pattern << ") failed (code " << rc << "); check the directory permissions");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace data

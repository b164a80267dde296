// engine/check.cc: fatal_at, the one place the engine reports an unrecoverable error.
#include "engine/check.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace engine {

void fatal_at(const char* file, int line, const char* fmt, ...) {
  std::fprintf(stderr, "resbm fatal at %s:%d: ", file, line);
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

}  // namespace engine

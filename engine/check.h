// engine/check.h: fatal errors with file:line and a hint, and ENGINE_CHECK for invariants that must hold.
#pragma once

namespace engine {

// Prints "resbm fatal at file:line: message" to stderr and aborts. printf-style.
[[noreturn]] void fatal_at(const char* file, int line, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

}  // namespace engine

#define ENGINE_FATAL(...) ::engine::fatal_at(__FILE__, __LINE__, __VA_ARGS__)
#define ENGINE_CHECK(cond, ...)                                         \
  do {                                                                  \
    if (!(cond)) ::engine::fatal_at(__FILE__, __LINE__, __VA_ARGS__);   \
  } while (0)

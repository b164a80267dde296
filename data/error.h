// data/error.h: DataError, the exception every data-path failure throws; messages name the file and say how to fix it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace data {

// Bad input (missing file, corrupt shard, unreadable vocab, bad flag) is reported by throwing this, never by aborting,
// so that tools print one clear line and tests can check the message.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace data

// Throws data::DataError with the streamed message and the source location (file:line) appended.
#define DATA_FAIL(message_stream)                                                    \
  do {                                                                               \
    std::ostringstream data_fail_os_;                                                \
    data_fail_os_ << message_stream << " [" << __FILE__ << ":" << __LINE__ << "]";  \
    throw ::data::DataError(data_fail_os_.str());                                    \
  } while (0)

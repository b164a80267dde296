// data/sha256.h: SHA-256 (FIPS 180-4) of a byte string, as lowercase hex, to verify downloaded and mirrored files.
#pragma once

#include <string>
#include <string_view>

namespace data {

std::string sha256_hex(std::string_view bytes);

}  // namespace data

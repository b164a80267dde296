// train/hostfile.cc: counting the slots of an mpirun hostfile (OpenMPI's syntax: `host slots=N`, `host`).
#include "train/hostfile.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace train {

int count_hostfile_slots(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  std::string line;
  int total = 0;
  for (int number = 1; std::getline(lines, line); ++number) {
    line = line.substr(0, line.find('#'));
    // "slots = 4" is "slots=4" to mpirun: drop the blanks around '=' before splitting into words.
    for (size_t eq = line.find('='); eq != std::string::npos; eq = line.find('=', eq + 1)) {
      while (eq > 0 && std::isspace(static_cast<unsigned char>(line[eq - 1]))) line.erase(--eq, 1);
      while (eq + 1 < line.size() && std::isspace(static_cast<unsigned char>(line[eq + 1]))) line.erase(eq + 1, 1);
    }
    std::istringstream words(line);
    std::string host, word;
    if (!(words >> host)) continue;  // blank or comment only
    int slots = 1;
    while (words >> word) {
      if (word.rfind("slots=", 0) != 0) continue;
      const std::string value = word.substr(6);
      char* end = nullptr;
      errno = 0;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno == ERANGE || n < 1 || n > 1000000) {
        throw std::invalid_argument("hostfile " + name + " line " + std::to_string(number) + ": slots=" + value +
                                    " is not a whole number of slots >= 1");
      }
      slots = static_cast<int>(n);
    }
    total += slots;
  }
  return total;
}

int hostfile_slots(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::invalid_argument("cannot read --hostfile " + path + ": " + std::strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  return count_hostfile_slots(text.str(), path);
}

}  // namespace train

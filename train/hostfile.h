// train/hostfile.h: how many ranks an mpirun hostfile has room for, so that --executor mpi can refuse a job larger
// than its hosts before starting it (the launcher passes --oversubscribe, under which mpirun would silently pile
// the extra ranks onto the hosts).
#pragma once

#include <string>

namespace train {

// The slots of a hostfile's text: one line per host, `host slots=N` (N >= 1; other key=value words such as
// max_slots= are mpirun's and ignored) or `host` alone for one slot; `#` starts a comment; blank lines are skipped.
// `name` is what messages call the file. Throws std::invalid_argument naming the line of a bad slots= value.
int count_hostfile_slots(const std::string& text, const std::string& name);

// The same, read from `path`. Throws std::invalid_argument when it cannot be read.
int hostfile_slots(const std::string& path);

}  // namespace train

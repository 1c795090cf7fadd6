// The one mapping from a dfs Status to the errno the FUSE mount returns.
// Every operation of the mount replies through it, so a given failure always
// looks the same to `ls`, `cp` or Python.
#pragma once

#include "common/status.h"

namespace dfs::fuse {

// 0 for OK; never 0 otherwise.
int ErrnoOf(const Status& status);

// True when the call never reached the NameNode (nothing to connect to, a
// refused connection): safe to retry even for a mutation.
bool NotSent(const Status& status);

// True when the NameNode could not be reached or did not answer: retrying
// later may help (reads are retried on these).
bool Unreachable(const Status& status);

}  // namespace dfs::fuse

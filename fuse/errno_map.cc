#include "fuse/errno_map.h"

#include <cerrno>

namespace dfs::fuse {

int ErrnoOf(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 0;
    case StatusCode::kNotFound: return ENOENT;
    case StatusCode::kAlreadyExists: return EEXIST;
    case StatusCode::kInvalidArgument: return EINVAL;
    case StatusCode::kPermissionDenied: return EACCES;
    case StatusCode::kSafeMode: return EROFS;  // read-only until the NameNode leaves safe mode
    case StatusCode::kNoSpace: return ENOSPC;
    case StatusCode::kNotADirectory: return ENOTDIR;
    case StatusCode::kIsADirectory: return EISDIR;
    case StatusCode::kNotEmpty: return ENOTEMPTY;
    case StatusCode::kLeaseConflict: return EBUSY;  // another client is writing the file
    case StatusCode::kNotSupported: return EOPNOTSUPP;
    case StatusCode::kStale: return ESTALE;
    case StatusCode::kTimedOut:
    case StatusCode::kUnavailable:  // the NameNode is unreachable (after the mount's retries)
    case StatusCode::kIOError:
    case StatusCode::kCorruption:
    case StatusCode::kAborted:
    case StatusCode::kInternal:
    case StatusCode::kProtocolError: return EIO;
  }
  return EIO;
}

bool NotSent(const Status& status) {
  const std::string& m = status.message();
  auto starts = [&](const char* p) { return m.rfind(p, 0) == 0; };
  return (status.code() == StatusCode::kUnavailable &&
          (starts("cannot connect to") || starts("cannot resolve host"))) ||
         (status.code() == StatusCode::kTimedOut && starts("connecting to"));
}

bool Unreachable(const Status& status) {
  return status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kTimedOut;
}

}  // namespace dfs::fuse

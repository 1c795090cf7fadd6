#include "common/status.h"

#include <cstring>

namespace dfs {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kAlreadyExists: return "AlreadyExists";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kPermissionDenied: return "PermissionDenied";
    case StatusCode::kIOError: return "IOError";
    case StatusCode::kCorruption: return "Corruption";
    case StatusCode::kSafeMode: return "SafeMode";
    case StatusCode::kNoSpace: return "NoSpace";
    case StatusCode::kUnavailable: return "Unavailable";
    case StatusCode::kTimedOut: return "TimedOut";
    case StatusCode::kNotADirectory: return "NotADirectory";
    case StatusCode::kIsADirectory: return "IsADirectory";
    case StatusCode::kNotEmpty: return "NotEmpty";
    case StatusCode::kLeaseConflict: return "LeaseConflict";
    case StatusCode::kAborted: return "Aborted";
    case StatusCode::kNotSupported: return "NotSupported";
    case StatusCode::kInternal: return "Internal";
    case StatusCode::kProtocolError: return "ProtocolError";
    case StatusCode::kStale: return "Stale";
  }
  return "Unknown";
}

Status Status::FromErrno(const std::string& context, int err) {
  StatusCode code = StatusCode::kIOError;
  switch (err) {
    case ENOENT: code = StatusCode::kNotFound; break;
    case EEXIST: code = StatusCode::kAlreadyExists; break;
    case EACCES:
    case EPERM: code = StatusCode::kPermissionDenied; break;
    case ENOSPC:
    case EDQUOT: code = StatusCode::kNoSpace; break;
    case ENOTDIR: code = StatusCode::kNotADirectory; break;
    case EISDIR: code = StatusCode::kIsADirectory; break;
    case ENOTEMPTY: code = StatusCode::kNotEmpty; break;
    case ETIMEDOUT: code = StatusCode::kTimedOut; break;
    default: break;
  }
  return Status(code, context + ": " + std::strerror(err));
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::Prepend(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace dfs

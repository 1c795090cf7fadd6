// Status and Result<T>: errors as values across module and RPC boundaries.
//
// A Status carries a code (which maps one-to-one onto proto::StatusCode, onto
// errno for FUSE and onto exit codes for the CLI) and a message written for the
// person who will read it: what went wrong and what to do. Exceptions from Asio,
// RocksDB or protobuf are caught where they arise and turned into a Status.
//
// Thread-safety: values; copy freely.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace dfs {

// Numbers are shared with proto::StatusCode (proto/rpc.proto); never reuse one.
enum class StatusCode : int {
  kOk = 0,
  kNotFound = 1,
  kAlreadyExists = 2,
  kInvalidArgument = 3,
  kPermissionDenied = 4,
  kIOError = 5,
  kCorruption = 6,
  kSafeMode = 7,
  kNoSpace = 8,
  kUnavailable = 9,
  kTimedOut = 10,
  kNotADirectory = 11,
  kIsADirectory = 12,
  kNotEmpty = 13,
  kLeaseConflict = 14,
  kAborted = 15,
  kNotSupported = 16,
  kInternal = 17,
  kProtocolError = 18,
  kStale = 19,
};
inline constexpr int kMaxStatusCode = 19;

// "NotFound", "IOError", ...: for logs, not for end users.
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
#define DFS_STATUS_FACTORY(Name) \
  static Status Name(std::string msg) { return Status(StatusCode::k##Name, std::move(msg)); }
  DFS_STATUS_FACTORY(NotFound)
  DFS_STATUS_FACTORY(AlreadyExists)
  DFS_STATUS_FACTORY(InvalidArgument)
  DFS_STATUS_FACTORY(PermissionDenied)
  DFS_STATUS_FACTORY(IOError)
  DFS_STATUS_FACTORY(Corruption)
  DFS_STATUS_FACTORY(SafeMode)
  DFS_STATUS_FACTORY(NoSpace)
  DFS_STATUS_FACTORY(Unavailable)
  DFS_STATUS_FACTORY(TimedOut)
  DFS_STATUS_FACTORY(NotADirectory)
  DFS_STATUS_FACTORY(IsADirectory)
  DFS_STATUS_FACTORY(NotEmpty)
  DFS_STATUS_FACTORY(LeaseConflict)
  DFS_STATUS_FACTORY(Aborted)
  DFS_STATUS_FACTORY(NotSupported)
  DFS_STATUS_FACTORY(Internal)
  DFS_STATUS_FACTORY(ProtocolError)
  DFS_STATUS_FACTORY(Stale)
#undef DFS_STATUS_FACTORY

  // Builds an IOError from errno, naming what was being done: "open /x: No such file".
  static Status FromErrno(const std::string& context, int err);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: message", for logs.
  std::string ToString() const;
  // Returns a copy with "context: " in front of the message.
  Status Prepend(const std::string& context) const;

  bool IsNotFound() const { return code_ == StatusCode::kNotFound; }
  bool IsAlreadyExists() const { return code_ == StatusCode::kAlreadyExists; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                   // NOLINT: implicit on purpose
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace dfs

#define DFS_CONCAT_INNER(a, b) a##b
#define DFS_CONCAT(a, b) DFS_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define DFS_RETURN_IF_ERROR(expr)               \
  do {                                          \
    ::dfs::Status _dfs_s = (expr);              \
    if (!_dfs_s.ok()) return _dfs_s;            \
  } while (0)

// `DFS_ASSIGN_OR_RETURN(auto x, F());` declares x from a Result or returns its Status.
#define DFS_ASSIGN_OR_RETURN(lhs, expr) DFS_ASSIGN_OR_RETURN_IMPL(DFS_CONCAT(_dfs_r, __LINE__), lhs, expr)
#define DFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

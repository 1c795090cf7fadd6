// Blocking TCP sockets with per-operation idle timeouts, for the data path and
// the RPC client. The descriptor is in blocking mode with SO_RCVTIMEO and
// SO_SNDTIMEO set from each call's timeout, so reading a whole packet is one
// recv(MSG_WAITALL) instead of a poll/recv pair per arriving segment. (Asio's
// synchronous operations retry EAGAIN with an infinite poll, which defeats
// SO_RCVTIMEO; hence this small class.)
//
// Thread-safety: one thread may read while another writes; otherwise callers
// serialise. Move-only; the destructor closes the descriptor.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <sys/uio.h>

#include "common/status.h"

namespace dfs {

using Millis = std::chrono::milliseconds;

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd);
  ~Socket();
  Socket(Socket&& o) noexcept;  // NOLINT
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Connects within `timeout`. `what` names the peer in errors ("DataNode 127.0.0.1:9866").
  static Result<Socket> Connect(const std::string& host, uint16_t port, Millis timeout,
                                const std::string& what = "");

  // Each call fails with TimedOut when no byte moves for `timeout`, and with
  // IOError naming the peer on a reset or an early end of stream.
  Status ReadFull(void* buf, size_t n, Millis timeout);
  // Reads what has arrived, 1 to n bytes, waiting up to `timeout` for the first.
  Result<size_t> ReadSome(void* buf, size_t n, Millis timeout);
  Status WriteFull(const void* buf, size_t n, Millis timeout);
  Status WriteV(struct iovec* iov, int iovcnt, Millis timeout);  // modifies iov
  // Sends n bytes of `file_fd` from `offset` with sendfile(2).
  Status SendFile(int file_fd, uint64_t offset, size_t n, Millis timeout);

  // Waits until a byte (or the peer's close) can be read; TimedOut otherwise.
  Status WaitReadable(Millis timeout);
  // True when the peer closed or sent something unasked (checked without waiting).
  bool HasPendingInput() const;

  void SetNoDelay();
  void ShutdownBoth();  // wakes a thread blocked in ReadFull on this socket
  void Close();
  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // "ip:port" of the peer (or "?"), and of this end.
  std::string PeerAddress() const;
  std::string PeerIp() const;
  std::string LocalIp() const;

 private:
  Status Wait(short events, Millis timeout, const char* op);
  void SetTimeout(int option, Millis timeout, int64_t* cached);
  Status Stalled(const char* op, Millis timeout) const;
  // The error of a recv that returned r <= 0 (not EINTR), errno untouched since.
  Status ReadFailed(ssize_t r, Millis timeout) const;
  // The error of a send that failed (not EINTR), errno untouched since; `what`
  // begins the message ("writing to").
  Status WriteFailed(const char* what, Millis timeout) const;
  int fd_ = -1;
  int64_t rcv_timeout_ms_ = -1;  // the SO_RCVTIMEO / SO_SNDTIMEO now set, to skip needless setsockopt
  int64_t snd_timeout_ms_ = -1;
};

class Listener {
 public:
  // Binds host:port (port 0 picks a free one) and listens.
  static Result<Listener> Listen(const std::string& host, uint16_t port, int backlog = 512);
  Listener() = default;
  ~Listener();
  Listener(Listener&& o) noexcept;
  Listener& operator=(Listener&& o) noexcept;

  // Waits up to `timeout` for a connection; TimedOut when none came.
  Result<Socket> Accept(Millis timeout);
  uint16_t port() const { return port_; }
  void Close();

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// Big-endian helpers for frame headers.
inline void PutBE32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
inline uint32_t GetBE32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

}  // namespace dfs

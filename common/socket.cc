#include "common/socket.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

namespace dfs {

namespace {

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }
void SetBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); }

std::string AddrToString(const sockaddr_storage& ss, bool with_port) {
  char buf[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  return with_port ? fmt::format("{}:{}", buf, port) : std::string(buf);
}

Status Resolve(const std::string& host, uint16_t port, sockaddr_storage* out, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string h = host.empty() ? "127.0.0.1" : host;
  int rc = getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res) {
    return Status::Unavailable(fmt::format("cannot resolve host '{}': {}", h, gai_strerror(rc)));
  }
  std::memcpy(out, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return Status::OK();
}

}  // namespace

Socket::Socket(int fd) : fd_(fd) {
  if (fd_ >= 0) SetBlocking(fd_);
}
Socket::~Socket() { Close(); }
Socket::Socket(Socket&& o) noexcept
    : fd_(o.fd_), rcv_timeout_ms_(o.rcv_timeout_ms_), snd_timeout_ms_(o.snd_timeout_ms_) {
  o.fd_ = -1;
}
Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    Close();
    fd_ = o.fd_;
    rcv_timeout_ms_ = o.rcv_timeout_ms_;
    snd_timeout_ms_ = o.snd_timeout_ms_;
    o.fd_ = -1;
  }
  return *this;
}

void Socket::SetTimeout(int option, Millis timeout, int64_t* cached) {
  // A zero SO_*TIMEO means "forever"; the shortest real timeout is 1 ms.
  const int64_t ms = std::max<int64_t>(1, timeout.count());
  if (*cached == ms) return;
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  setsockopt(fd_, SOL_SOCKET, option, &tv, sizeof tv);
  *cached = ms;
}

Status Socket::Stalled(const char* op, Millis timeout) const {
  return Status::TimedOut(fmt::format("{} {}: no progress for {} ms", op, PeerAddress(), timeout.count()));
}

Status Socket::ReadFailed(ssize_t r, Millis timeout) const {
  if (r == 0) return Status::IOError(fmt::format("connection closed by {}", PeerAddress()));
  const int err = errno;  // before PeerAddress's getpeername
  if (err == EAGAIN || err == EWOULDBLOCK) return Stalled("reading from", timeout);
  return Status::IOError(fmt::format("reading from {}: {}", PeerAddress(), std::strerror(err)));
}

Status Socket::WriteFailed(const char* what, Millis timeout) const {
  const int err = errno;  // before PeerAddress's getpeername
  if (err == EAGAIN || err == EWOULDBLOCK) return Stalled("writing to", timeout);
  return Status::IOError(fmt::format("{} {}: {}", what, PeerAddress(), std::strerror(err)));
}

void Socket::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::ShutdownBoth() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void Socket::SetNoDelay() {
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string Socket::PeerAddress() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (fd_ < 0 || getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return AddrToString(ss, true);
}

std::string Socket::PeerIp() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (fd_ < 0 || getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return AddrToString(ss, false);
}

std::string Socket::LocalIp() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  return AddrToString(ss, false);
}

Result<Socket> Socket::Connect(const std::string& host, uint16_t port, Millis timeout, const std::string& what) {
  std::string name = what.empty() ? fmt::format("{}:{}", host, port) : what;
  sockaddr_storage addr{};
  socklen_t len = 0;
  DFS_RETURN_IF_ERROR(Resolve(host, port, &addr, &len));
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket", errno);
  Socket s(fd);
  SetNonBlocking(fd);  // for a connect with a timeout; blocking again below
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  if (rc != 0 && errno != EINPROGRESS) {
    return Status::Unavailable(fmt::format("cannot connect to {}: {}", name, std::strerror(errno)));
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int n;
    do {
      n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n == 0) return Status::TimedOut(fmt::format("connecting to {} timed out after {} ms", name, timeout.count()));
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) return Status::Unavailable(fmt::format("cannot connect to {}: {}", name, std::strerror(err)));
  }
  SetBlocking(fd);
  s.SetNoDelay();
  return s;
}

Status Socket::Wait(short events, Millis timeout, const char* op) {
  pollfd p{fd_, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n > 0) return Status::OK();
    if (n == 0) {
      return Status::TimedOut(
          fmt::format("{} {}: no progress for {} ms", op, PeerAddress(), timeout.count()));
    }
    if (errno != EINTR) return Status::FromErrno(op, errno);
  }
}

Status Socket::WaitReadable(Millis timeout) { return Wait(POLLIN, timeout, "waiting for"); }

bool Socket::HasPendingInput() const {
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0;
}

Status Socket::ReadFull(void* buf, size_t n, Millis timeout) {
  SetTimeout(SO_RCVTIMEO, timeout, &rcv_timeout_ms_);
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    // MSG_WAITALL: one call for the whole buffer; it returns early only on a
    // timeout (then progress restarts the clock, as an idle timeout should),
    // a signal, the peer's close or an error.
    ssize_t r = ::recv(fd_, p, n, MSG_WAITALL);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return ReadFailed(r, timeout);
  }
  return Status::OK();
}

Result<size_t> Socket::ReadSome(void* buf, size_t n, Millis timeout) {
  SetTimeout(SO_RCVTIMEO, timeout, &rcv_timeout_ms_);
  for (;;) {
    ssize_t r = ::recv(fd_, buf, n, 0);
    if (r > 0) return static_cast<size_t>(r);
    if (r < 0 && errno == EINTR) continue;
    return ReadFailed(r, timeout);
  }
}

Status Socket::WriteFull(const void* buf, size_t n, Millis timeout) {
  iovec iov{const_cast<void*>(buf), n};
  return WriteV(&iov, 1, timeout);
}

Status Socket::WriteV(struct iovec* iov, int iovcnt, Millis timeout) {
  SetTimeout(SO_SNDTIMEO, timeout, &snd_timeout_ms_);
  while (iovcnt > 0) {
    if (iov->iov_len == 0) {
      ++iov;
      --iovcnt;
      continue;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return WriteFailed("writing to", timeout);
    }
    size_t left = static_cast<size_t>(w);
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return Status::OK();
}

Status Socket::SendFile(int file_fd, uint64_t offset, size_t n, Millis timeout) {
  SetTimeout(SO_SNDTIMEO, timeout, &snd_timeout_ms_);
  off_t off = static_cast<off_t>(offset);
  while (n > 0) {
    ssize_t w = ::sendfile(fd_, file_fd, &off, n);
    if (w > 0) {
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w == 0) return Status::IOError("sendfile: the replica file is shorter than expected");
    if (errno == EINTR) continue;
    return WriteFailed("sendfile to", timeout);
  }
  return Status::OK();
}

Result<Listener> Listener::Listen(const std::string& host, uint16_t port, int backlog) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  DFS_RETURN_IF_ERROR(Resolve(host, port, &addr, &len));
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    int err = errno;
    ::close(fd);
    return Status::Unavailable(fmt::format("cannot listen on {}:{}: {}{}", host, port, std::strerror(err),
                                           err == EADDRINUSE ? " (is another daemon already running there?)" : ""));
  }
  if (::listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno("listen", err);
  }
  SetNonBlocking(fd);
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  Listener l;
  l.fd_ = fd;
  l.port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return l;
}

Listener::~Listener() { Close(); }
Listener::Listener(Listener&& o) noexcept : fd_(o.fd_), port_(o.port_) { o.fd_ = -1; }
Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    Close();
    fd_ = o.fd_;
    port_ = o.port_;
    o.fd_ = -1;
  }
  return *this;
}

void Listener::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Socket> Listener::Accept(Millis timeout) {
  pollfd p{fd_, POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (n <= 0) return Status::TimedOut("no connection");
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return Status::FromErrno("accept", errno);
  Socket s(fd);
  s.SetNoDelay();
  return s;
}

}  // namespace dfs

#include "client/cli/transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <istream>
#include <ostream>

#include "client/cli/context.h"
#include "client/cli/progress.h"

namespace dfs::cli {

namespace {

// Local-disk failures of a download are IOErrors naming the local file, so that
// "No such file or directory" about a local directory is never read as being
// about the dfs source.
Status LocalError(const std::string& what, int err) { return Status::IOError(what + ": " + std::strerror(err)); }

}  // namespace

Status Pump(Context& ctx, const ReadFn& read, const WriteFn& write, Progress* progress) {
  std::vector<char>& buf = ctx.Buffer();
  while (true) {
    if (ctx.interrupted()) return Status::Aborted("interrupted");
    DFS_ASSIGN_OR_RETURN(size_t n, read(buf.data(), buf.size()));
    if (n == 0) return Status::OK();
    DFS_RETURN_IF_ERROR(write(buf.data(), n));
    if (progress) progress->Add(n);
  }
}

ReadFn FdReader(int fd, const std::string& name) {
  return [fd, name](char* buf, size_t n) -> Result<size_t> {
    while (true) {
      ssize_t r = ::read(fd, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return LocalError("read " + name, errno);
    }
  };
}

ReadFn DfsReader(client::InputStream& in) {
  return [&in](char* buf, size_t n) { return in.Read(buf, n); };
}

ReadFn IstreamReader(std::istream& in) {
  return [&in](char* buf, size_t n) -> Result<size_t> {
    in.read(buf, static_cast<std::streamsize>(n));
    if (in.bad()) return Status::IOError("cannot read standard input");
    return static_cast<size_t>(in.gcount());
  };
}

WriteFn FdWriter(int fd, const std::string& name) {
  return [fd, name](const char* buf, size_t n) -> Status {
    while (n > 0) {
      ssize_t w = ::write(fd, buf, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return LocalError("write " + name, errno);
      }
      buf += w;
      n -= static_cast<size_t>(w);
    }
    return Status::OK();
  };
}

WriteFn OstreamWriter(std::ostream& out) {
  return [&out](const char* buf, size_t n) -> Status {
    out.write(buf, static_cast<std::streamsize>(n));
    return out ? Status::OK() : Status::IOError("Unable to write to output stream");
  };
}

Status Upload(Context& ctx, const ReadFn& read, uint64_t total, const std::string& dst, const UploadOptions& opts,
              const std::string& label) {
  client::FileSystem& fs = ctx.fs();
  const std::string tmp = opts.direct ? dst : dst + std::string(kCopyingSuffix);
  client::CreateOptions co;
  // A stale temporary from a killed upload is replaced, as Hadoop does.
  co.overwrite = opts.direct ? opts.overwrite : true;
  co.create_parent = false;
  co.replication = static_cast<uint32_t>(fs.config().GetInt("dfs.replication"));
  co.block_size = fs.config().GetSize("dfs.blocksize");
  DFS_ASSIGN_OR_RETURN(std::unique_ptr<client::OutputStream> out, fs.Create(tmp, co));

  Progress progress(ctx, label, total);
  Status s = Pump(
      ctx, read, [&](const char* buf, size_t n) { return out->Write(buf, n); }, &progress);
  if (s.ok()) s = out->Close();
  progress.Finish();
  out.reset();
  if (s.ok() && !opts.direct) s = fs.Rename(tmp, dst, opts.overwrite);
  if (!s.ok()) (void)fs.Delete(tmp, false);
  return s;
}

Status Download(Context& ctx, const std::string& src, uint64_t length, const std::string& dst,
                const std::string& label) {
  DFS_ASSIGN_OR_RETURN(std::unique_ptr<client::InputStream> in, ctx.fs().Open(src));
  const std::string tmp = dst + std::string(kCopyingSuffix);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return LocalError("cannot create " + tmp, errno);
  Progress progress(ctx, label, length);
  Status s = Pump(ctx, DfsReader(*in), FdWriter(fd, tmp), &progress);
  progress.Finish();
  if (::close(fd) != 0 && s.ok()) s = LocalError("close " + tmp, errno);
  if (s.ok() && ::rename(tmp.c_str(), dst.c_str()) != 0) s = LocalError("rename " + tmp, errno);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

}  // namespace dfs::cli

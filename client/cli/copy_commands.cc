// Commands that move bytes: put (copyFromLocal), appendToFile, get
// (copyToLocal), cp, cat, tail and getmerge. Files are written through
// Upload/Download (transfer.h): `<dst>._COPYING_` first, renamed when
// complete, deleted on failure. appendToFile cannot work that way: it writes
// into the file itself, through FileSystem::Append.
#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <ostream>

#include "client/cli/commands.h"
#include "client/cli/glob.h"
#include "client/cli/progress.h"
#include "client/cli/transfer.h"
#include "common/path.h"

namespace dfs::cli {

namespace {

namespace stdfs = std::filesystem;
using client::FileInfo;

// Hadoop's tail prints the last kilobyte.
constexpr uint64_t kTailBytes = 1024;

// Closes a local file descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// "dir/", "./dir", "/a/b" → "dir", "dir", "b"; the name a copy gets inside a directory.
std::string LocalBaseName(const std::string& path) {
  std::string p = stdfs::absolute(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return BaseName(p);
}

PathArg Child(const PathArg& dir, const std::string& name) {
  return PathArg{ChildDisplay(dir.display, name), JoinPath(dir.path, name)};
}

// -p: the source's times and permission bits on the copy.
struct Preserved {
  int64_t mtime_ms;
  int64_t atime_ms;
  uint32_t mode;
};

void PreserveInDfs(Context& ctx, const PathArg& target, const Preserved& p) {
  Status s = ctx.fs().SetTimes(target.path, p.mtime_ms, p.atime_ms);
  if (s.ok()) s = ctx.fs().SetPermission(target.path, p.mode & 07777);
  if (!s.ok()) ctx.Error(target.display, s);
}

// ---- put ------------------------------------------------------------------

struct PutJob {
  Context& ctx;
  UploadOptions upload;
  bool preserve;

  // The target may not exist (unless overwriting) and may not be a directory.
  bool CheckTarget(const PathArg& target) {
    auto info = ctx.fs().GetFileInfo(target.path);
    if (info.ok()) {
      if (info->is_dir) {
        ctx.Error(target.display, Status::IsADirectory("is a directory"));
        return false;
      }
      if (!upload.overwrite) {
        ctx.Error(target.display, Status::AlreadyExists("exists"));
        return false;
      }
    } else if (!info.status().IsNotFound()) {
      ctx.Error(target.display, info.status());
      return false;
    }
    return true;
  }

  void PutFile(const std::string& src, const struct stat& st, const PathArg& target) {
    if (!CheckTarget(target)) return;
    Fd fd(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      ctx.Error(src, Status::FromErrno("open", errno));
      return;
    }
    Status s = Upload(ctx, FdReader(fd.get(), src), static_cast<uint64_t>(st.st_size), target.path, upload,
                      LocalBaseName(src));
    if (!s.ok()) {
      ctx.Error(target.display, s);
      return;
    }
    if (preserve) {
      PreserveInDfs(ctx, target,
                    {int64_t(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000,
                     int64_t(st.st_atim.tv_sec) * 1000 + st.st_atim.tv_nsec / 1000000, st.st_mode});
    }
  }

  // A local directory merges into an existing dfs directory, as in Hadoop.
  void PutDir(const std::string& src, const PathArg& target) {
    auto info = ctx.fs().GetFileInfo(target.path);
    if (info.ok() && !info->is_dir) {
      ctx.Error(target.display, Status::NotADirectory("not a directory"));
      return;
    }
    if (!info.ok()) {
      Status s = info.status().IsNotFound() ? ctx.fs().Mkdirs(target.path, 0755, false) : info.status();
      if (!s.ok()) {
        ctx.Error(target.display, s);
        return;
      }
    }
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& e : stdfs::directory_iterator(src, ec)) names.push_back(e.path().filename().string());
    if (ec) {
      ctx.Error(src, Status::FromErrno("list", ec.value()));
      return;
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      if (ctx.interrupted()) return;
      Put((stdfs::path(src) / name).string(), Child(target, name));
    }
  }

  void Put(const std::string& src, const PathArg& target) {
    struct stat st {};
    if (::stat(src.c_str(), &st) != 0) {
      ctx.Error(src, Status::FromErrno("stat", errno));
    } else if (S_ISDIR(st.st_mode)) {
      PutDir(src, target);
    } else {
      PutFile(src, st, target);
    }
  }
};

// ---- get ------------------------------------------------------------------

struct GetJob {
  Context& ctx;
  bool overwrite;
  bool preserve;

  void GetFile(const PathArg& src, const FileInfo& info, const std::string& target) {
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        ctx.Error(target, Status::IsADirectory("is a directory"));
        return;
      }
      if (!overwrite) {
        ctx.Error(target, Status::AlreadyExists("exists"));
        return;
      }
    }
    Status s = Download(ctx, src.path, info.length, target, info.name.empty() ? BaseName(src.path) : info.name);
    if (!s.ok()) {
      ctx.Error(src.display, s);
      return;
    }
    if (preserve) {
      struct timespec times[2] = {{info.atime_ms / 1000, (info.atime_ms % 1000) * 1000000},
                                  {info.mtime_ms / 1000, (info.mtime_ms % 1000) * 1000000}};
      if (::utimensat(AT_FDCWD, target.c_str(), times, 0) != 0 || ::chmod(target.c_str(), info.mode & 07777) != 0) {
        ctx.Error(target, Status::FromErrno("preserve attributes", errno));
      }
    }
  }

  void GetDir(const PathArg& src, const std::string& target) {
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        ctx.Error(target, Status::NotADirectory("not a directory"));
        return;
      }
    } else if (::mkdir(target.c_str(), 0755) != 0) {
      ctx.Error(target, Status::FromErrno("mkdir", errno));
      return;
    }
    auto entries = ctx.fs().ListAll(src.path);
    if (!entries.ok()) {
      ctx.Error(src.display, entries.status());
      return;
    }
    for (const auto& e : *entries) {
      if (ctx.interrupted()) return;
      Get(Child(src, e.name), e, (stdfs::path(target) / e.name).string());
    }
  }

  void Get(const PathArg& src, const FileInfo& info, const std::string& target) {
    if (info.is_dir) {
      GetDir(src, target);
    } else {
      GetFile(src, info, target);
    }
  }
};

// Copies a dfs file or directory tree to another dfs path.
struct CpJob {
  Context& ctx;
  UploadOptions upload;
  bool preserve;

  void CopyFile(const PathArg& src, const FileInfo& info, const PathArg& target) {
    auto existing = ctx.fs().GetFileInfo(target.path);
    if (existing.ok() && (existing->is_dir || !upload.overwrite)) {
      ctx.Error(target.display,
                existing->is_dir ? Status::IsADirectory("is a directory") : Status::AlreadyExists("exists"));
      return;
    }
    auto in = ctx.fs().Open(src.path);
    if (!in.ok()) {
      ctx.Error(src.display, in.status());
      return;
    }
    Status s = Upload(ctx, DfsReader(**in), info.length, target.path, upload, BaseName(src.path));
    if (!s.ok()) {
      ctx.Error(target.display, s);
      return;
    }
    if (preserve) PreserveInDfs(ctx, target, {info.mtime_ms, info.atime_ms, info.mode});
  }

  void CopyDir(const PathArg& src, const PathArg& target) {
    auto existing = ctx.fs().GetFileInfo(target.path);
    Status s = existing.ok()
                   ? (existing->is_dir ? Status::OK() : Status::NotADirectory("not a directory"))
                   : (existing.status().IsNotFound() ? ctx.fs().Mkdirs(target.path, 0755, false) : existing.status());
    auto entries = s.ok() ? ctx.fs().ListAll(src.path) : Result<std::vector<FileInfo>>(s);
    if (!entries.ok()) {
      ctx.Error(target.display, entries.status());
      return;
    }
    for (const auto& e : *entries) {
      if (ctx.interrupted()) return;
      Copy(Child(src, e.name), e, Child(target, e.name));
    }
  }

  void Copy(const PathArg& src, const FileInfo& info, const PathArg& target) {
    if (info.is_dir && IsSameOrUnder(target.path, src.path)) {
      ctx.Error(fmt::format("'{}' to '{}': is a subdirectory of itself", src.display, target.display));
    } else if (info.is_dir) {
      CopyDir(src, target);
    } else {
      CopyFile(src, info, target);
    }
  }
};

// The destination of a multi-source copy must be an existing directory.
bool CheckMultiSourceDst(Context& ctx, size_t sources, bool dst_is_dir, const std::string& display,
                         const Status& dst_status) {
  if (sources <= 1 || dst_is_dir) return true;
  ctx.Error(display, dst_status.ok() ? Status::NotADirectory("not a directory") : dst_status);
  return false;
}

// With one operand the destination is ".": the home directory for put, the
// working directory for get, as in Hadoop.
Args WithDefaultDestination(const Args& args) {
  Args out = args;
  if (out.size() == 1) out.push_back(".");
  return out;
}

}  // namespace

int RunPut(Context& ctx, const Flags& flags, const Args& operands) {
  const Args args = WithDefaultDestination(operands);
  PutJob job{ctx, {flags.Has("f"), flags.Has("d")}, flags.Has("p")};
  const Args srcs(args.begin(), args.end() - 1);
  const std::string& dst_arg = args.back();
  const PathArg dst = ResolveArg(ctx.fs(), dst_arg);
  auto dst_info = ctx.fs().GetFileInfo(dst.path);
  if (!dst_info.ok() && !dst_info.status().IsNotFound()) {
    ctx.Error(dst.display, dst_info.status());
    return ctx.ExitCode();
  }
  const bool dst_is_dir = dst_info.ok() && dst_info->is_dir;
  // "put f newdir/" names a directory even before it exists, as in Hadoop.
  const bool into_dir = dst_is_dir || (dst_arg.size() > 1 && dst_arg.back() == '/');

  if (std::find(srcs.begin(), srcs.end(), "-") != srcs.end()) {
    if (srcs.size() != 1) return ctx.UsageError("'-' (stdin) must be the only source");
    if (dst_is_dir) {
      ctx.Error(dst.display, Status::IsADirectory("is a directory"));
    } else if (job.CheckTarget(dst)) {
      Status s = Upload(ctx, IstreamReader(ctx.in), 0, dst.path, job.upload, "stdin");
      if (!s.ok()) ctx.Error(dst.display, s);
    }
    return ctx.ExitCode();
  }
  if (!CheckMultiSourceDst(ctx, srcs.size(), dst_is_dir, dst.display, dst_info.status())) return ctx.ExitCode();
  for (const auto& src : srcs) {
    if (ctx.interrupted()) break;
    job.Put(src, into_dir ? Child(dst, LocalBaseName(src)) : dst);
  }
  return ctx.ExitCode();
}

int RunAppendToFile(Context& ctx, const Flags&, const Args& args) {
  const Args srcs(args.begin(), args.end() - 1);
  const PathArg dst = ResolveArg(ctx.fs(), args.back());
  if (std::find(srcs.begin(), srcs.end(), "-") != srcs.end() && srcs.size() != 1) {
    return ctx.UsageError("'-' (stdin) must be the only source");
  }
  // Every local source is checked first: a typo in the last one must not
  // leave the others appended.
  uint64_t total = 0;
  for (const auto& src : srcs) {
    if (src == "-") continue;
    struct stat st {};
    if (::stat(src.c_str(), &st) != 0) {
      ctx.Error(src, Status::FromErrno("stat", errno));
    } else if (S_ISDIR(st.st_mode)) {
      ctx.Error(src, Status::IsADirectory("is a directory"));
    } else {
      total += static_cast<uint64_t>(st.st_size);
    }
  }
  if (ctx.failed()) return ctx.ExitCode();

  // Append to the file, or create it as Hadoop does (the parent must exist, as for put).
  std::unique_ptr<client::OutputStream> out;
  auto take = [&](Result<std::unique_ptr<client::OutputStream>> r) {
    if (r.ok()) out = std::move(r).value();
    return r.ok() ? Status::OK() : r.status();
  };
  auto info = ctx.fs().GetFileInfo(dst.path);
  Status s;
  if (info.ok()) {
    s = info->is_dir ? Status::IsADirectory("is a directory") : take(ctx.fs().Append(dst.path));
  } else if (info.status().IsNotFound()) {
    client::CreateOptions co;
    co.create_parent = false;
    co.replication = static_cast<uint32_t>(ctx.fs().config().GetInt("dfs.replication"));
    co.block_size = ctx.fs().config().GetSize("dfs.blocksize");
    s = take(ctx.fs().Create(dst.path, co));
    // Someone else created it meanwhile: append to theirs.
    if (s.code() == StatusCode::kAlreadyExists) s = take(ctx.fs().Append(dst.path));
  } else {
    s = info.status();
  }
  if (!s.ok()) {
    ctx.Error(dst.display, s);
    return ctx.ExitCode();
  }

  Progress progress(ctx, BaseName(dst.path), total);
  bool dfs_failed = false;  // else a local read failed
  const WriteFn write = [&](const char* buf, size_t n) {
    Status ws = out->Write(buf, n);
    dfs_failed = !ws.ok();
    return ws;
  };
  std::string failed_src;
  for (const auto& src : srcs) {
    if (src == "-") {
      s = Pump(ctx, IstreamReader(ctx.in), write, &progress);
    } else {
      Fd fd(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
      s = fd.get() < 0 ? Status::FromErrno("open", errno) : Pump(ctx, FdReader(fd.get(), src), write, &progress);
    }
    if (!s.ok()) {
      failed_src = src;
      break;
    }
  }
  // Closed even after a failure (Ctrl-C included), so that what was appended
  // is kept and the file does not stay open until its lease expires.
  Status closed = out->Close();
  progress.Finish();
  if (!s.ok() && !dfs_failed && s.code() != StatusCode::kAborted) {
    ctx.Error(failed_src == "-" ? "stdin" : failed_src, s);
    if (!closed.ok()) ctx.Error(dst.display, closed);
  } else if (!s.ok()) {
    ctx.Error(dst.display, s);
  } else if (!closed.ok()) {
    ctx.Error(dst.display, closed);
  }
  return ctx.ExitCode();
}

int RunGet(Context& ctx, const Flags& flags, const Args& operands) {
  const Args args = WithDefaultDestination(operands);
  GetJob job{ctx, flags.Has("f"), flags.Has("p")};
  const std::string& dst = args.back();
  struct stat st {};
  const bool dst_exists = ::stat(dst.c_str(), &st) == 0;
  const bool dst_is_dir = dst_exists && S_ISDIR(st.st_mode);
  const std::vector<PathArg> srcs = ExpandArgs(ctx, Args(args.begin(), args.end() - 1));
  const Status dst_status = dst_exists ? Status::OK() : Status::NotFound("no such directory");
  if (!CheckMultiSourceDst(ctx, srcs.size(), dst_is_dir, dst, dst_status)) return ctx.ExitCode();
  for (const auto& src : srcs) {
    if (ctx.interrupted()) break;
    auto info = ctx.fs().GetFileInfo(src.path);
    if (!info.ok()) {
      ctx.Error(src.display, info.status());
      continue;
    }
    std::string name = BaseName(src.path);
    job.Get(src, *info, dst_is_dir ? (stdfs::path(dst) / (name.empty() ? "root" : name)).string() : dst);
  }
  return ctx.ExitCode();
}

int RunCp(Context& ctx, const Flags& flags, const Args& args) {
  CpJob job{ctx, {flags.Has("f"), false}, flags.Has("p")};
  const PathArg dst = ResolveArg(ctx.fs(), args.back());
  auto dst_info = ctx.fs().GetFileInfo(dst.path);
  if (!dst_info.ok() && !dst_info.status().IsNotFound()) {
    ctx.Error(dst.display, dst_info.status());
    return ctx.ExitCode();
  }
  const bool dst_is_dir = dst_info.ok() && dst_info->is_dir;
  const std::vector<PathArg> srcs = ExpandArgs(ctx, Args(args.begin(), args.end() - 1));
  if (!CheckMultiSourceDst(ctx, srcs.size(), dst_is_dir, dst.display, dst_info.status())) return ctx.ExitCode();
  for (const auto& src : srcs) {
    if (ctx.interrupted()) break;
    auto info = ctx.fs().GetFileInfo(src.path);
    if (!info.ok()) {
      ctx.Error(src.display, info.status());
      continue;
    }
    job.Copy(src, *info, dst_is_dir ? Child(dst, BaseName(src.path)) : dst);
  }
  return ctx.ExitCode();
}

int RunCat(Context& ctx, const Flags&, const Args& args) {
  for (const auto& p : ExpandArgs(ctx, args)) {
    auto info = ctx.fs().GetFileInfo(p.path);
    Status s = !info.ok() ? info.status() : info->is_dir ? Status::IsADirectory("is a directory") : Status::OK();
    if (s.ok()) {
      auto in = ctx.fs().Open(p.path);
      s = in.ok() ? Pump(ctx, DfsReader(**in), OstreamWriter(ctx.out)) : in.status();
    }
    if (!s.ok()) ctx.Error(p.display, s);
  }
  return ctx.ExitCode();
}

int RunTail(Context& ctx, const Flags& flags, const Args& args) {
  const PathArg p = ResolveArg(ctx.fs(), args[0]);
  auto info = ctx.fs().GetFileInfo(p.path);
  Status s = !info.ok() ? info.status() : info->is_dir ? Status::IsADirectory("is a directory") : Status::OK();
  std::unique_ptr<client::InputStream> in;
  if (s.ok()) {
    auto opened = ctx.fs().Open(p.path);
    if (opened.ok()) {
      in = std::move(opened).value();
    } else {
      s = opened.status();
    }
  }
  if (s.ok()) s = in->Seek(in->Length() > kTailBytes ? in->Length() - kTailBytes : 0);
  if (s.ok()) s = Pump(ctx, DfsReader(*in), OstreamWriter(ctx.out));
  // -f: poll for growth once a second until Ctrl-C.
  while (s.ok() && flags.Has("f")) {
    ctx.out.flush();
    if (!ctx.sleep(std::chrono::seconds(1))) break;
    s = in->Refresh();
    if (s.ok() && in->Length() > in->Position()) s = Pump(ctx, DfsReader(*in), OstreamWriter(ctx.out));
  }
  if (!s.ok() && s.code() != StatusCode::kAborted) ctx.Error(p.display, s);
  return ctx.ExitCode();
}

int RunGetmerge(Context& ctx, const Flags& flags, const Args& args) {
  const bool newline = flags.Has("nl"), skip_empty = flags.Has("skip-empty-file");
  // Files to merge: the matches of the source, a directory standing for the
  // files directly in it (not its subdirectories), in name order.
  std::vector<std::pair<PathArg, FileInfo>> files;
  for (const auto& p : ExpandArgs(ctx, {args[0]})) {
    auto info = ctx.fs().GetFileInfo(p.path);
    if (!info.ok()) {
      ctx.Error(p.display, info.status());
    } else if (!info->is_dir) {
      files.emplace_back(p, *info);
    } else if (auto entries = ctx.fs().ListAll(p.path); !entries.ok()) {
      ctx.Error(p.display, entries.status());
    } else {
      for (const auto& e : *entries) {
        if (!e.is_dir) files.emplace_back(Child(p, e.name), e);
      }
    }
  }
  if (ctx.failed()) return ctx.ExitCode();
  const std::string& dst = args[1];
  Fd fd(::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    ctx.Error(dst, Status::FromErrno("create", errno));
    return ctx.ExitCode();
  }
  const WriteFn write = FdWriter(fd.get(), dst);
  for (const auto& [p, info] : files) {
    if (info.length == 0 && skip_empty) continue;
    Status s;
    if (info.length > 0) {
      auto in = ctx.fs().Open(p.path);
      s = in.ok() ? Pump(ctx, DfsReader(**in), write) : in.status();
    }
    if (s.ok() && newline) s = write("\n", 1);
    if (!s.ok()) {
      ctx.Error(s.code() == StatusCode::kIOError ? dst : p.display, s);
      break;
    }
  }
  return ctx.ExitCode();
}

}  // namespace dfs::cli

// Moving bytes for the copy commands (put, get, cp, cat, getmerge): one copy
// loop over Context::Buffer() (1 MiB, allocated once per command), and the
// two safe ways to create a file.
//
// Upload (into dfs) and Download (to the local disk) write `<dst>._COPYING_`
// and rename it to `<dst>` only once every byte is in, as Hadoop's shell does;
// on any failure, Ctrl-C included, they delete the temporary, so a failed copy
// leaves nothing behind and never a truncated `<dst>`.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

#include "client/filesystem.h"

namespace dfs::cli {

struct Context;
class Progress;

inline constexpr std::string_view kCopyingSuffix = "._COPYING_";

// Reads up to n bytes into buf; 0 at the end.
using ReadFn = std::function<Result<size_t>(char* buf, size_t n)>;
using WriteFn = std::function<Status(const char* buf, size_t n)>;

// Copies until `read` returns 0. Stops with Aborted when the user presses Ctrl-C.
Status Pump(Context& ctx, const ReadFn& read, const WriteFn& write, Progress* progress = nullptr);

ReadFn FdReader(int fd, const std::string& name);
ReadFn DfsReader(client::InputStream& in);
ReadFn IstreamReader(std::istream& in);
WriteFn FdWriter(int fd, const std::string& name);
WriteFn OstreamWriter(std::ostream& out);

struct UploadOptions {
  bool overwrite = false;  // replace an existing dst
  bool direct = false;     // write dst itself, no temporary (put -d)
};

// Creates dfs file `dst` from `read` (`total` bytes if known, for the progress
// bar; 0 if not). Replication and block size come from the client config
// (dfs.replication, dfs.blocksize, so `-D` applies). Parents must exist.
Status Upload(Context& ctx, const ReadFn& read, uint64_t total, const std::string& dst, const UploadOptions& opts,
              const std::string& label);

// Copies dfs file `src` to local file `dst`, replacing it if it exists.
Status Download(Context& ctx, const std::string& src, uint64_t length, const std::string& dst,
                const std::string& label);

}  // namespace dfs::cli

#include "client/cli/context.h"

#include <ostream>
#include <thread>

#include "client/cli/commands.h"

namespace dfs::cli {

std::string ErrorText(const Status& status) {
  switch (status.code()) {
    case StatusCode::kNotFound:
      return "No such file or directory";
    case StatusCode::kAlreadyExists:
      return "File exists";
    case StatusCode::kIsADirectory:
      return "Is a directory";
    case StatusCode::kNotADirectory:
      return "Not a directory";
    case StatusCode::kNotEmpty:
      return "Directory is not empty";
    default:
      return status.message();
  }
}

Context::Context(client::FileSystem* fs, std::ostream& out, std::ostream& err, std::istream& in)
    : fs_ptr(fs), out(out), err(err), in(in) {
  sleep = [](std::chrono::milliseconds d) {
    std::this_thread::sleep_for(d);
    return true;
  };
  interrupted = [] { return false; };
  now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
}

void Context::Error(const std::string& display, const Status& status) {
  out.flush();
  err << "dfs: '" << display << "': " << ErrorText(status) << '\n';
  failed_ = true;
  MaybeHint(status);
}

void Context::Error(const std::string& message) {
  out.flush();
  err << "dfs: " << message << '\n';
  failed_ = true;
}

int Context::UsageError(const std::string& message) {
  out.flush();
  if (command) {
    err << "dfs " << command->name << ": " << message << '\n';
    err << "Usage: dfs " << command->name << ' ' << command->usage << '\n';
  } else {
    err << "dfs: " << message << '\n';
    err << "Run 'dfs help' for the list of commands.\n";
  }
  return kExitUsage;
}

// A refused or unreachable NameNode fails every path the same way; say once
// what to check, as Hadoop points at its ConnectionRefused wiki page.
void Context::MaybeHint(const Status& status) {
  if (hinted_ || status.code() != StatusCode::kUnavailable) return;
  hinted_ = true;
  std::string where = fs_ptr ? fs_ptr->namenode_address() : std::string("the configured address");
  err << "dfs: hint: is the NameNode running at " << where
      << "? Start it with dfs-namenode, or point dfs at it with -fs host:port (or fs.defaultFS in the config).\n";
}

std::vector<char>& Context::Buffer() {
  if (buffer_.empty()) buffer_.resize(kCopyBufferBytes);
  return buffer_;
}

}  // namespace dfs::cli

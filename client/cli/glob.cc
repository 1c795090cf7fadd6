#include "client/cli/glob.h"

#include <fnmatch.h>

#include <algorithm>

#include "client/cli/context.h"
#include "common/path.h"

namespace dfs::cli {

namespace {

bool IsAbsoluteArg(std::string_view arg) {
  return (!arg.empty() && arg[0] == '/') || arg.find("://") != std::string_view::npos;
}

// Drops the backslash in front of * ? [ ] and \ ; other backslashes are data.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && std::string_view("*?[]\\").find(s[i + 1]) != std::string_view::npos) ++i;
    out += s[i];
  }
  return out;
}

// The display form of a glob match: relative to home when the user typed a
// relative pattern, else absolute.
std::string DisplayFor(client::FileSystem& fs, const std::string& arg, const std::string& path) {
  if (IsAbsoluteArg(arg)) return path;
  const std::string& home = fs.home();
  if (path == home) return ".";
  if (IsSameOrUnder(path, home)) return path.substr(home == "/" ? 1 : home.size() + 1);
  return path;
}

}  // namespace

bool HasGlob(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '*' || s[i] == '?' || s[i] == '[') {
      return true;
    }
  }
  return false;
}

std::string ChildDisplay(std::string_view display, std::string_view name) {
  if (display.empty() || display == ".") return std::string(name);
  std::string out(display);
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

PathArg ResolveArg(client::FileSystem& fs, const std::string& arg) {
  return PathArg{arg, fs.ResolvePath(arg.empty() ? "." : arg)};
}

Result<std::vector<PathArg>> ExpandGlob(client::FileSystem& fs, const std::string& arg) {
  if (!HasGlob(arg)) {
    PathArg p = ResolveArg(fs, arg);
    p.path = Unescape(p.path);
    return std::vector<PathArg>{p};
  }
  const std::vector<std::string> comps = SplitPath(fs.ResolvePath(arg));
  std::vector<std::string> current = {"/"};
  bool verified = true;  // every path in `current` is known to exist
  for (size_t i = 0; i < comps.size() && !current.empty(); ++i) {
    const std::string& comp = comps[i];
    const bool last = i + 1 == comps.size();
    std::vector<std::string> next;
    if (!HasGlob(comp)) {
      const std::string name = Unescape(comp);
      for (const auto& dir : current) next.push_back(JoinPath(dir, name));
      verified = false;
    } else {
      for (const auto& dir : current) {
        Status s = fs.List(dir, [&](const client::FileInfo& e) {
          if ((last || e.is_dir) && fnmatch(comp.c_str(), e.name.c_str(), 0) == 0) {
            next.push_back(JoinPath(dir, e.name));
          }
          return true;
        });
        // A literal component that named nothing, or a file where a directory
        // was needed, simply matches nothing.
        if (!s.ok() && s.code() != StatusCode::kNotFound && s.code() != StatusCode::kNotADirectory) return s;
      }
      verified = true;
    }
    current = std::move(next);
  }
  std::vector<PathArg> out;
  for (const auto& p : current) {
    if (!verified) {
      auto info = fs.GetFileInfo(p);
      if (!info.ok()) {
        if (info.status().IsNotFound()) continue;
        return info.status();
      }
    }
    out.push_back(PathArg{DisplayFor(fs, arg, p), p});
  }
  if (out.empty()) return Status::NotFound("no match for " + arg);
  std::sort(out.begin(), out.end(), [](const PathArg& a, const PathArg& b) { return a.path < b.path; });
  return out;
}

std::vector<PathArg> ExpandArgs(Context& ctx, const std::vector<std::string>& args) {
  std::vector<PathArg> out;
  for (const auto& arg : args) {
    auto r = ExpandGlob(ctx.fs(), arg);
    if (!r.ok()) {
      ctx.Error(arg, r.status());
      continue;
    }
    for (auto& p : *r) out.push_back(std::move(p));
  }
  return out;
}

void Walk(Context& ctx, const PathArg& root, const client::FileInfo& info, bool recursive, const WalkFn& fn) {
  fn(root, info);
  if (!recursive || !info.is_dir) return;
  auto entries = ctx.fs().ListAll(root.path);
  if (!entries.ok()) {
    ctx.Error(root.display, entries.status());
    return;
  }
  for (const auto& e : *entries) {
    Walk(ctx, PathArg{ChildDisplay(root.display, e.name), JoinPath(root.path, e.name)}, e, true, fn);
  }
}

}  // namespace dfs::cli

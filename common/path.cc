#include "common/path.h"

#include <fmt/format.h>

namespace dfs {

Status ValidatePath(std::string_view path, size_t max_component) {
  auto bad = [&](const std::string& why) {
    std::string shown(path.substr(0, 200));
    for (char& c : shown) {
      if (c == '\0') c = '?';
    }
    return Status::InvalidArgument(fmt::format("invalid path '{}{}': {}", shown, path.size() > 200 ? "..." : "", why));
  };
  if (path.empty()) return bad("the path is empty");
  if (path.size() > kMaxPathBytes) return bad(fmt::format("longer than {} bytes", kMaxPathBytes));
  if (path[0] != '/') return bad("paths must be absolute (start with /)");
  if (path.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
  if (path == "/") return Status::OK();
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view comp = path.substr(pos, slash - pos);
    if (comp.empty()) return bad("contains an empty component ('//' or a trailing '/')");
    if (comp == "." || comp == "..") return bad("'.' and '..' are not allowed as names");
    if (comp.size() > max_component) {
      return bad(fmt::format("component of {} bytes is longer than the limit of {}", comp.size(), max_component));
    }
    pos = slash + 1;
  }
  return Status::OK();
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) out.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

std::string ParentPath(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return std::string(path);
  return std::string(path.substr(slash + 1));
}

std::string NormalizePath(std::string_view path, std::string_view cwd) {
  std::string p(path);
  for (const char* scheme : {"dfs://", "hdfs://"}) {
    size_t n = std::char_traits<char>::length(scheme);
    if (p.rfind(scheme, 0) == 0) {
      size_t slash = p.find('/', n);
      p = slash == std::string::npos ? "/" : p.substr(slash);
    }
  }
  std::string full = (!p.empty() && p[0] == '/') ? p : JoinPath(cwd, p);
  std::vector<std::string> parts;
  for (auto& c : SplitPath(full)) {
    if (c == ".") continue;
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(std::move(c));
  }
  std::string out;
  for (const auto& c : parts) out += "/" + c;
  return out.empty() ? "/" : out;
}

bool IsSameOrUnder(std::string_view path, std::string_view ancestor) {
  if (ancestor == "/") return true;
  if (path.size() < ancestor.size() || path.substr(0, ancestor.size()) != ancestor) return false;
  return path.size() == ancestor.size() || path[ancestor.size()] == '/';
}

}  // namespace dfs

// dfs paths: absolute, '/'-separated, validated on the NameNode so that no
// client can create a name the namespace cannot hold or a tool cannot print.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dfs {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kDefaultMaxComponentBytes = 255;

// Accepts "/" and "/a/b"; refuses relative paths, empty components ("//", a
// trailing "/"), "." and "..", NUL bytes, components over max_component bytes
// and paths over kMaxPathBytes. The message names the path and the rule.
Status ValidatePath(std::string_view path, size_t max_component = kDefaultMaxComponentBytes);

// Components of a valid path; "/" has none.
std::vector<std::string> SplitPath(std::string_view path);

// "/a" + "b" → "/a/b"; "/" + "b" → "/b".
std::string JoinPath(std::string_view dir, std::string_view name);

// "/a/b" → "/a"; "/a" → "/"; "/" → "/".
std::string ParentPath(std::string_view path);

// "/a/b" → "b"; "/" → "".
std::string BaseName(std::string_view path);

// Client-side: makes `path` absolute against `cwd` (the user's home directory,
// /user/<name>, as in Hadoop), collapses "//", drops trailing "/" and resolves
// "." and "..". Strips a dfs:// or hdfs://host:port prefix.
std::string NormalizePath(std::string_view path, std::string_view cwd);

// True when `path` is `ancestor` or lies under it.
bool IsSameOrUnder(std::string_view path, std::string_view ancestor);

}  // namespace dfs

// Paths as the user typed them: resolving them against the home directory and
// expanding dfs globs (`*`, `?`, `[...]`) client-side, as Hadoop's globStatus
// does, by matching each wildcard component (fnmatch) against a listing of the
// directories matched so far. A backslash escapes a wildcard character.
//
// Every path carries two spellings: `path`, absolute, for the FileSystem, and
// `display`, for messages and listings, which keeps the user's relative form
// ("input/part-0", not "/user/alice/input/part-0") as `hdfs dfs` does.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "client/filesystem.h"

namespace dfs::cli {

struct Context;

struct PathArg {
  std::string display;
  std::string path;
};

// True when `s` holds an unescaped '*', '?' or '['.
bool HasGlob(std::string_view s);

// The display form of a child: "dir" + "f" → "dir/f"; "." + "f" → "f".
std::string ChildDisplay(std::string_view display, std::string_view name);

// One argument, no glob expansion: the absolute path, not checked for existence.
PathArg ResolveArg(client::FileSystem& fs, const std::string& arg);

// The paths `arg` names: itself when it has no wildcard (unchecked), else every
// existing match in sorted order, or NotFound when nothing matches.
Result<std::vector<PathArg>> ExpandGlob(client::FileSystem& fs, const std::string& arg);

// Expands each argument; reports the ones that fail on ctx.err (marking the
// command failed) and returns the matches of the others, in argument order.
std::vector<PathArg> ExpandArgs(Context& ctx, const std::vector<std::string>& args);

using WalkFn = std::function<void(const PathArg& p, const client::FileInfo& info)>;

// Calls fn for `root` and, when `recursive` and it is a directory, for every
// entry below it: parents before their children, children in name order. A
// directory that cannot be listed is reported on ctx and skipped.
void Walk(Context& ctx, const PathArg& root, const client::FileInfo& info, bool recursive, const WalkFn& fn);

}  // namespace dfs::cli

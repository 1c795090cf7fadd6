// Local accounts, looked up with the reentrant getpw*_r / getgr*_r calls: the
// plain getpwuid and friends return a static buffer that two threads (two
// clients connecting at once, say) would overwrite under each other.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace dfs {

std::optional<std::string> LocalUserName(uid_t uid);
std::optional<std::string> LocalGroupName(gid_t gid);
std::optional<uid_t> LocalUid(const std::string& user);
std::optional<gid_t> LocalGid(const std::string& group);

}  // namespace dfs

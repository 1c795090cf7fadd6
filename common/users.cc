#include "common/users.h"

#include <grp.h>
#include <pwd.h>

#include <vector>

namespace dfs {

namespace {

constexpr size_t kBuf = 16384;  // ample for one passwd or group entry

}  // namespace

std::optional<std::string> LocalUserName(uid_t uid) {
  std::vector<char> buf(kBuf);
  passwd pw{}, *res = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res) return std::string(res->pw_name);
  return std::nullopt;
}

std::optional<std::string> LocalGroupName(gid_t gid) {
  std::vector<char> buf(kBuf);
  group gr{}, *res = nullptr;
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &res) == 0 && res) return std::string(res->gr_name);
  return std::nullopt;
}

std::optional<uid_t> LocalUid(const std::string& user) {
  std::vector<char> buf(kBuf);
  passwd pw{}, *res = nullptr;
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res) == 0 && res) return res->pw_uid;
  return std::nullopt;
}

std::optional<gid_t> LocalGid(const std::string& group) {
  std::vector<char> buf(kBuf);
  ::group gr{}, *res = nullptr;
  if (getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &res) == 0 && res) return res->gr_gid;
  return std::nullopt;
}

}  // namespace dfs

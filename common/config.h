// Configuration: Hadoop-style keys (dfs.replication, dfs.blocksize, ...) with a
// documented default for every key, so no file is needed on one machine.
//
// Sources, later ones winning: built-in defaults; the file named by --conf, else
// $DFS_CONF, else $DFS_HOME/dfs.conf if it exists, else the machine's
// /etc/dfs/dfs.conf if it exists (an installed lab: every user of the machine
// finds the cluster); then -D key=value overrides.
// The file format is one `key = value` per line with `#` comments (conf/dfs.conf
// is the documented example). Values may use ${DFS_HOME} and a leading ~.
// Sizes take k/m/g/t suffixes (powers of 1024); durations take ms/s/m/h (a bare
// number is in the key's own unit, as Hadoop does).
//
// Thread-safety: a Config is immutable once built and safe to share for reading.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace dfs {

enum class ConfigType { kString, kInt, kSize, kDuration, kFloat, kBool, kAddress };

struct ConfigKey {
  const char* name;
  const char* default_value;
  ConfigType type;
  const char* unit;  // for durations: "s" or "ms", the unit of a bare number
  const char* doc;
};

// Every key dfs knows, in a stable order (used by --dump-default-config).
const std::vector<ConfigKey>& AllConfigKeys();

// $DFS_HOME, or ~/.dfs.
std::string DfsHome();

// The machine-wide configuration file, read when no other is named or found.
inline constexpr const char* kSystemConfFile = "/etc/dfs/dfs.conf";

class Config {
 public:
  // Defaults only.
  Config() = default;

  // Loads the file (or $DFS_CONF, or $DFS_HOME/dfs.conf when present, or
  // `system_file` when present) and applies `overrides`. Unknown keys and
  // unparsable values are errors naming the line.
  static Result<Config> Load(const std::string& conf_file,
                             const std::vector<std::pair<std::string, std::string>>& overrides = {},
                             const std::string& system_file = kSystemConfFile);

  // Sets one key, checking that its value parses. Unknown keys are refused.
  Status Set(const std::string& key, const std::string& value);

  // Getters return the set value or the default. They assume a known key with a
  // value that Set validated; an unknown key is a programming error (aborts).
  std::string GetString(const std::string& key) const;
  int64_t GetInt(const std::string& key) const;
  uint64_t GetSize(const std::string& key) const;
  std::chrono::milliseconds GetDuration(const std::string& key) const;
  double GetFloat(const std::string& key) const;
  bool GetBool(const std::string& key) const;

  // The file this config came from, or "" for defaults only.
  const std::string& source() const { return source_; }

  // Prints every key with its default and documentation, in dfs.conf syntax.
  static std::string DumpDefaults();

 private:
  std::string Raw(const std::string& key) const;

  std::map<std::string, std::string> values_;
  std::string source_;
};

// Parsing helpers, exposed for the CLI and tests.
Result<uint64_t> ParseSize(const std::string& text);
Result<std::chrono::milliseconds> ParseDuration(const std::string& text, const std::string& bare_unit);
// "host:port" → host and port; "dfs://host:port/" and "hdfs://host:port" are accepted.
Status ParseHostPort(const std::string& text, std::string* host, uint16_t* port);
// "4.0 M", as `hdfs dfs -du -h` prints sizes.
std::string HumanSize(uint64_t bytes);

}  // namespace dfs

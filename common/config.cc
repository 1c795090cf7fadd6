#include "common/config.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <fmt/format.h>

namespace dfs {

namespace {

// Every knob, documented where it is defined. Hadoop's key names are used where
// Hadoop has the same knob; the defaults suit a teaching lab, not a data centre.
const std::vector<ConfigKey> kKeys = {
    {"fs.defaultFS", "dfs://127.0.0.1:8020", ConfigType::kAddress, "",
     "The NameNode clients talk to (dfs://host:port; hdfs:// and plain host:port work too).\n"
     "Overridden by $DFS_NAMENODE or --namenode."},
    {"dfs.namenode.rpc-address", "", ConfigType::kString, "",
     "host:port the NameNode serves RPC on. Empty: the address in fs.defaultFS."},
    {"dfs.namenode.rpc-bind-host", "", ConfigType::kString, "",
     "Bind the NameNode's RPC server to this host instead (e.g. 0.0.0.0 for all interfaces)."},
    {"dfs.namenode.name.dir", "${DFS_HOME}/namenode", ConfigType::kString, "",
     "Where the NameNode keeps its namespace (a RocksDB database)."},
    {"dfs.namenode.wal.spare-size", "64m", ConfigType::kSize, "",
     "Zeros the NameNode writes ahead for its next write-ahead log, so that the log's syncs\n"
     "rewrite allocated blocks instead of appending (faster durable creates on ext4, which\n"
     "otherwise writes the log's new size at each sync; see doc/design.md). 0 turns this off."},
    {"dfs.namenode.handler.count", "32", ConfigType::kInt, "",
     "NameNode RPC handler threads. mkdir, delete, rename and the other synchronous mutations\n"
     "hold one each while they wait for their group commit (create, complete and append do not)."},
    {"dfs.namenode.replication.min", "2", ConfigType::kInt, "",
     "Replicas a block needs on DataNodes before a close is acknowledged (capped at the file's\n"
     "replication), so one dead disk cannot lose a closed file. Hadoop closes at 1.\n"
     "The older name dfs.replication.min is accepted too."},
    {"dfs.replication", "3", ConfigType::kInt, "", "Default number of replicas of each block."},
    {"dfs.replication.max", "512", ConfigType::kInt, "", "Largest replication a file may ask for."},
    {"dfs.blocksize", "128m", ConfigType::kSize, "", "Default block size of new files."},
    {"dfs.bytes-per-checksum", "64k", ConfigType::kSize, "",
     "Bytes covered by each XXH3 checksum (see doc/design.md for why 64 KiB, not Hadoop's 512)."},
    {"dfs.client-write-packet-size", "256k", ConfigType::kSize, "",
     "Data bytes per packet on the write pipeline (a multiple of dfs.bytes-per-checksum)."},
    {"dfs.client.write.max-packets-in-flight", "64", ConfigType::kInt, "",
     "Packets a writer may send before their acks come back."},
    {"dfs.client.socket-timeout", "60s", ConfigType::kDuration, "ms",
     "How long a data transfer may make no progress before it is abandoned."},
    {"dfs.client.rpc-timeout", "60s", ConfigType::kDuration, "ms",
     "How long the client waits for one NameNode call."},
    {"dfs.client.block.write.locateFollowingBlock.retries", "40", ConfigType::kInt, "",
     "How many times close() asks the NameNode whether the last block is replicated enough."},
    {"dfs.ls.limit", "1000", ConfigType::kInt, "", "Entries per page when listing a directory."},
    {"dfs.heartbeat.interval", "3s", ConfigType::kDuration, "s",
     "How often DataNodes heartbeat the NameNode."},
    {"dfs.namenode.datanode.dead.interval", "30s", ConfigType::kDuration, "s",
     "A DataNode silent this long is declared dead (Hadoop waits 10.5 minutes; a lab cannot)."},
    {"dfs.blockreport.intervalMsec", "6h", ConfigType::kDuration, "ms",
     "How often DataNodes send a full block report (incremental reports go at once)."},
    {"dfs.namenode.replication.interval", "3s", ConfigType::kDuration, "s",
     "How often the NameNode looks for blocks with too few or too many replicas."},
    {"dfs.namenode.replication.max-streams", "2", ConfigType::kInt, "",
     "Replica copies one DataNode may be sending at a time."},
    {"dfs.namenode.safemode.threshold-pct", "0.999", ConfigType::kFloat, "",
     "Fraction of blocks that must be reported before the NameNode leaves safe mode."},
    {"dfs.namenode.safemode.min.datanodes", "0", ConfigType::kInt, "",
     "Live DataNodes needed before the NameNode leaves safe mode."},
    {"dfs.namenode.safemode.extension", "0s", ConfigType::kDuration, "ms",
     "Extra time safe mode lasts after the threshold is reached."},
    {"dfs.namenode.lease.soft-limit", "60s", ConfigType::kDuration, "s",
     "A writer that has not renewed its lease for this long may be pre-empted by another writer."},
    {"dfs.namenode.lease.hard-limit", "5m", ConfigType::kDuration, "s",
     "A writer that has not renewed its lease for this long is presumed dead: the NameNode recovers\n"
     "its file to the longest length all surviving replicas agree on, and closes it. Hadoop waits 20m;\n"
     "a lab wants the files of a killed job back sooner."},
    {"dfs.namenode.fs-limits.max-component-length", "255", ConfigType::kInt, "",
     "Longest allowed path component, in bytes."},
    {"dfs.namenode.fs-limits.max-directory-items", "1048576", ConfigType::kInt, "",
     "Most entries one directory may hold."},
    {"dfs.permissions.superusergroup", "supergroup", ConfigType::kString, "",
     "Group given to new files and directories."},
    {"dfs.datanode.address", "127.0.0.1:9866", ConfigType::kString, "",
     "host:port the DataNode serves block data on (port 0 picks a free one)."},
    {"dfs.datanode.hostname", "", ConfigType::kString, "",
     "Name the DataNode reports; empty uses the address the NameNode sees."},
    {"dfs.datanode.data.dir", "${DFS_HOME}/datanode", ConfigType::kString, "",
     "Comma-separated directories for block replicas, usually one per disk."},
    {"dfs.datanode.du.reserved", "0", ConfigType::kSize, "",
     "Bytes per data directory kept free for other uses."},
    {"dfs.datanode.max.transfer.threads", "256", ConfigType::kInt, "",
     "Concurrent block reads and writes one DataNode serves."},
    {"dfs.datanode.sync-on-close", "true", ConfigType::kBool, "",
     "fsync a replica before acknowledging its last packet (durable against power loss)."},
    {"dfs.datanode.capacity", "0", ConfigType::kSize, "",
     "Most bytes of replicas each data directory may hold; 0 = as much as its file system has.\n"
     "Caps what a lab machine gives the cluster. A DataNode without room for a block gets no new ones."},
    {"dfs.datanode.failed.volumes.tolerated", "-1", ConfigType::kInt, "",
     "Data directories that may fail (I/O errors) before the DataNode stops; -1 = keep going while one works.\n"
     "Hadoop's default is 0 (stop at the first failure); a lab machine is more useful serving its other disks,\n"
     "and the failed directory's replicas are re-replicated either way."},
    {"dfs.datanode.scan.period", "1d", ConfigType::kDuration, "h",
     "The block scanner re-verifies every replica's checksums once per period, spread over it; 0 turns it off.\n"
     "(Hadoop: dfs.datanode.scan.period.hours, default three weeks.)"},
    {"dfs.block.scanner.volume.bytes.per.second", "1m", ConfigType::kSize, "",
     "Most bytes per second the block scanner reads, so it never competes with clients for the disk."},
    {"dfs.datanode.task.slots", "0", ConfigType::kInt, "",
     "Streaming tasks (mappers, reducers) one DataNode runs at a time; 0 = one per CPU core."},
    {"dfs.datanode.task.dir", "", ConfigType::kString, "",
     "Local directory for tasks' working directories and map outputs; empty = 'tasks' next to\n"
     "the first data directory."},
    {"dfs.jobs.locality.wait", "500ms", ConfigType::kDuration, "ms",
     "How long a map task waits for a slot on a DataNode holding its block before it runs elsewhere."},
    {"dfs.jobs.retained", "500", ConfigType::kInt, "",
     "Finished jobs the NameNode remembers for `dfs job -list all`, -status and -logs."},
    {"mapreduce.job.reduces", "1", ConfigType::kInt, "",
     "Default number of reduce tasks of a streaming job (-numReduceTasks; old name mapred.reduce.tasks)."},
    {"mapreduce.map.maxattempts", "4", ConfigType::kInt, "",
     "Attempts a map task gets (each on another DataNode when there is one) before the job fails."},
    {"mapreduce.reduce.maxattempts", "4", ConfigType::kInt, "", "The same for reduce tasks."},
    {"mapreduce.task.timeout", "10m", ConfigType::kDuration, "ms",
     "A task that reads no input and writes no output for this long is killed and retried; 0 = never."},
    {"mapreduce.task.io.sort.mb", "100", ConfigType::kInt, "",
     "Memory (MiB) a map task uses to sort its output before spilling it to local disk."},
    {"mapreduce.task.limit.cpu", "1h", ConfigType::kDuration, "s",
     "CPU time one task's program may use (RLIMIT_CPU); 0 = unlimited."},
    {"mapreduce.task.limit.memory", "4g", ConfigType::kSize, "",
     "Address space one task's program may map (RLIMIT_AS); 0 = unlimited."},
    {"mapreduce.task.limit.file-size", "16g", ConfigType::kSize, "",
     "Largest file one task's program may write (RLIMIT_FSIZE); 0 = unlimited."},
    {"dfs.fuse.attr.timeout", "1s", ConfigType::kDuration, "ms",
     "How long the kernel may cache a mounted file's attributes (size, mode, times) before asking again."},
    {"dfs.fuse.entry.timeout", "1s", ConfigType::kDuration, "ms",
     "How long the kernel may cache a name's lookup in a mounted directory."},
    {"dfs.fuse.negative.timeout", "0", ConfigType::kDuration, "ms",
     "How long the kernel may remember that a name does not exist; 0 = never, so a file created\n"
     "on another machine shows up at once."},
    {"dfs.fuse.readahead", "8m", ConfigType::kSize, "",
     "Largest read-ahead window of one open file in the mount: a sequential reader is served\n"
     "from one window while the next is fetched; windows start at 1 MiB and double up to this."},
    {"dfs.fuse.readahead.kernel", "1m", ConfigType::kSize, "",
     "The kernel's own read-ahead for the mount (its read_ahead_kb, 128 KiB unless raised), so\n"
     "that it asks for several pieces of a file at once. Setting it needs root; 0 leaves it alone."},
    {"dfs.fuse.namenode.retry", "20s", ConfigType::kDuration, "ms",
     "How long a mount operation keeps retrying while the NameNode is unreachable before it\n"
     "fails with EIO (logged); the mount itself stays up and recovers when the NameNode is back."},
    {"dfs.log.level", "info", ConfigType::kString, "", "trace, debug, info, warn or error."},
};

// Older names Hadoop still accepts, and the key each now means.
const std::vector<std::pair<std::string, std::string>> kAliases = {
    {"dfs.replication.min", "dfs.namenode.replication.min"},
    {"mapred.reduce.tasks", "mapreduce.job.reduces"},
    {"mapred.map.max.attempts", "mapreduce.map.maxattempts"},
    {"mapred.reduce.max.attempts", "mapreduce.reduce.maxattempts"},
    {"mapred.task.timeout", "mapreduce.task.timeout"},
    {"io.sort.mb", "mapreduce.task.io.sort.mb"},
};

const std::string& Canonical(const std::string& name) {
  for (const auto& [alias, key] : kAliases) {
    if (name == alias) return key;
  }
  return name;
}

const ConfigKey* FindKey(const std::string& name) {
  for (const auto& k : kKeys) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string Expand(std::string v) {
  const std::string home_var = "${DFS_HOME}";
  for (size_t p; (p = v.find(home_var)) != std::string::npos;) v.replace(p, home_var.size(), DfsHome());
  if (!v.empty() && v[0] == '~') {
    const char* home = std::getenv("HOME");
    v = std::string(home ? home : "") + v.substr(1);
  }
  return v;
}

Status Validate(const ConfigKey& key, const std::string& value) {
  auto bad = [&](const std::string& what) {
    return Status::InvalidArgument(fmt::format("bad value '{}' for {}: {}", value, key.name, what));
  };
  switch (key.type) {
    case ConfigType::kInt: {
      char* end = nullptr;
      errno = 0;
      (void)std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno) return bad("expected a whole number");
      return Status::OK();
    }
    case ConfigType::kSize: {
      auto r = ParseSize(value);
      return r.ok() ? Status::OK() : bad(r.status().message());
    }
    case ConfigType::kDuration: {
      auto r = ParseDuration(value, key.unit);
      return r.ok() ? Status::OK() : bad(r.status().message());
    }
    case ConfigType::kFloat: {
      char* end = nullptr;
      (void)std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0') return bad("expected a number such as 0.999");
      return Status::OK();
    }
    case ConfigType::kBool:
      if (value != "true" && value != "false") return bad("expected true or false");
      return Status::OK();
    case ConfigType::kAddress: {
      std::string host;
      uint16_t port;
      Status s = ParseHostPort(value, &host, &port);
      return s.ok() ? Status::OK() : bad(s.message());
    }
    case ConfigType::kString:
      return Status::OK();
  }
  return Status::OK();
}

}  // namespace

const std::vector<ConfigKey>& AllConfigKeys() { return kKeys; }

std::string DfsHome() {
  const char* h = std::getenv("DFS_HOME");
  if (h && *h) return h;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/tmp") + "/.dfs";
}

Result<Config> Config::Load(const std::string& conf_file,
                            const std::vector<std::pair<std::string, std::string>>& overrides,
                            const std::string& system_file) {
  Config c;
  std::string path = conf_file;
  bool required = !path.empty();
  if (path.empty()) {
    const char* env = std::getenv("DFS_CONF");
    if (env && *env) {
      path = env;
      required = true;
    } else {
      path = DfsHome() + "/dfs.conf";
      // A user's own file wins; the machine's is what an installed lab shares.
      if (::access(path.c_str(), F_OK) != 0 && !system_file.empty() && ::access(system_file.c_str(), F_OK) == 0) {
        path = system_file;
      }
    }
  }
  std::ifstream in(path);
  if (!in) {
    if (required) {
      return Status::NotFound(fmt::format("cannot read configuration file {}: {}; check the path given by "
                                          "--conf or $DFS_CONF",
                                          path, std::strerror(errno)));
    }
  } else {
    c.source_ = path;
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      size_t hash = line.find('#');
      if (hash != std::string::npos) line.resize(hash);
      line = Trim(line);
      if (line.empty()) continue;
      size_t eq = line.find('=');
      if (eq == std::string::npos) {
        return Status::InvalidArgument(
            fmt::format("{}:{}: expected 'key = value', got '{}'", path, lineno, line));
      }
      Status s = c.Set(Trim(line.substr(0, eq)), Trim(line.substr(eq + 1)));
      if (!s.ok()) return s.Prepend(fmt::format("{}:{}", path, lineno));
    }
  }
  for (const auto& [k, v] : overrides) {
    Status s = c.Set(k, v);
    if (!s.ok()) return s.Prepend("-D " + k);
  }
  return c;
}

Status Config::Set(const std::string& given_key, const std::string& value) {
  const std::string& key = Canonical(given_key);
  const ConfigKey* k = FindKey(key);
  if (!k) {
    return Status::InvalidArgument(
        fmt::format("unknown configuration key '{}'; `dfs-namenode --dump-default-config` lists them all", key));
  }
  std::string v = Expand(value);
  DFS_RETURN_IF_ERROR(Validate(*k, v));
  values_[key] = v;
  return Status::OK();
}

std::string Config::Raw(const std::string& key) const {
  auto it = values_.find(key);
  if (it != values_.end()) return it->second;
  const ConfigKey* k = FindKey(key);
  if (!k) {
    std::fprintf(stderr, "internal error: unknown configuration key %s\n", key.c_str());
    std::abort();
  }
  return Expand(k->default_value);
}

std::string Config::GetString(const std::string& key) const { return Raw(key); }
int64_t Config::GetInt(const std::string& key) const { return std::strtoll(Raw(key).c_str(), nullptr, 10); }
uint64_t Config::GetSize(const std::string& key) const { return ParseSize(Raw(key)).value(); }
double Config::GetFloat(const std::string& key) const { return std::strtod(Raw(key).c_str(), nullptr); }
bool Config::GetBool(const std::string& key) const { return Raw(key) == "true"; }
std::chrono::milliseconds Config::GetDuration(const std::string& key) const {
  return ParseDuration(Raw(key), FindKey(key)->unit).value();
}

std::string Config::DumpDefaults() {
  std::string out = "# dfs configuration: every key with its default.\n";
  for (const auto& k : kKeys) {
    out += "\n";
    std::istringstream doc(k.doc);
    for (std::string l; std::getline(doc, l);) out += "# " + l + "\n";
    out += fmt::format("{} = {}\n", k.name, k.default_value);
  }
  return out;
}

Result<uint64_t> ParseSize(const std::string& text) {
  if (text.empty()) return Status::InvalidArgument("empty size");
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || errno || v < 0) {
    return Status::InvalidArgument(fmt::format("'{}' is not a size such as 128m or 4096", text));
  }
  std::string suffix = Trim(end);
  uint64_t mult = 1;
  if (!suffix.empty()) {
    switch (std::tolower(static_cast<unsigned char>(suffix[0]))) {
      case 'b': mult = 1; break;
      case 'k': mult = 1ull << 10; break;
      case 'm': mult = 1ull << 20; break;
      case 'g': mult = 1ull << 30; break;
      case 't': mult = 1ull << 40; break;
      default:
        return Status::InvalidArgument(fmt::format("'{}' has an unknown size suffix (use k, m, g or t)", text));
    }
    std::string rest = suffix.substr(1);
    for (char& ch : rest) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!rest.empty() && rest != "b" && rest != "ib") {
      return Status::InvalidArgument(fmt::format("'{}' has an unknown size suffix (use k, m, g or t)", text));
    }
  }
  double bytes = v * static_cast<double>(mult);
  if (bytes > 9.0e18) return Status::InvalidArgument(fmt::format("size '{}' is too large", text));
  return static_cast<uint64_t>(std::llround(bytes));
}

Result<std::chrono::milliseconds> ParseDuration(const std::string& text, const std::string& bare_unit) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end == text.c_str() || errno || v < 0) {
    return Status::InvalidArgument(fmt::format("'{}' is not a duration such as 3s or 500ms", text));
  }
  std::string unit = Trim(end);
  if (unit.empty()) unit = bare_unit.empty() ? "ms" : bare_unit;
  double ms;
  if (unit == "ms") ms = v;
  else if (unit == "s") ms = v * 1000;
  else if (unit == "m" || unit == "min") ms = v * 60'000;
  else if (unit == "h") ms = v * 3'600'000;
  else if (unit == "d") ms = v * 86'400'000;
  else return Status::InvalidArgument(fmt::format("'{}' has an unknown time unit (use ms, s, m, h or d)", text));
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

Status ParseHostPort(const std::string& text, std::string* host, uint16_t* port) {
  std::string t = text;
  for (const char* scheme : {"dfs://", "hdfs://"}) {
    if (t.rfind(scheme, 0) == 0) t = t.substr(std::strlen(scheme));
  }
  while (!t.empty() && t.back() == '/') t.pop_back();
  size_t colon = t.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == t.size()) {
    return Status::InvalidArgument(fmt::format("'{}' is not host:port (for example 127.0.0.1:8020)", text));
  }
  char* end = nullptr;
  long p = std::strtol(t.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535) {
    return Status::InvalidArgument(fmt::format("'{}' has a bad port number", text));
  }
  *host = t.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  *port = static_cast<uint16_t>(p);
  return Status::OK();
}

std::string HumanSize(uint64_t bytes) {
  static const char* kUnits[] = {"", " K", " M", " G", " T", " P"};
  if (bytes < 1024) return std::to_string(bytes);
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f}{}", v, kUnits[u]);
}

}  // namespace dfs

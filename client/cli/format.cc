#include "client/cli/format.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <ostream>

#include "common/config.h"

namespace dfs::cli {

namespace {

std::string StrfTime(int64_t ms, const char* format, bool utc) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  if (utc) {
    gmtime_r(&secs, &tm);
  } else {
    localtime_r(&secs, &tm);
  }
  char buf[128];
  size_t n = strftime(buf, sizeof(buf), format, &tm);
  return std::string(buf, n);
}

std::string Capacity(uint64_t bytes) { return fmt::format("{} ({})", bytes, ByteDesc(bytes)); }

double Pct(uint64_t part, uint64_t whole) { return whole == 0 ? 0.0 : 100.0 * double(part) / double(whole); }

void FormatNode(const proto::DatanodeInfo& n, int64_t now_ms, std::string* out) {
  const auto& id = n.id();
  const std::string host = id.hostname().empty() ? id.ip() : id.hostname();
  *out += fmt::format("Name: {}\n", DatanodeName(id));
  *out += fmt::format("Hostname: {}\n", host);
  *out += fmt::format("Decommission Status : {}\n", AdminStateText(n.admin_state()));
  if (n.admin_state() == proto::DECOMMISSION_IN_PROGRESS) {
    // The labels of Hadoop's NameNode web UI for a decommissioning node.
    *out += fmt::format("Under replicated blocks: {}\n", n.decommission_under_replicated());
    *out += fmt::format("Blocks with no live replicas: {}\n", n.decommission_only_replicas());
    if (!n.decommission_note().empty()) *out += fmt::format("Decommission blocked: {}\n", n.decommission_note());
  }
  *out += fmt::format("Configured Capacity: {}\n", Capacity(n.capacity()));
  *out += fmt::format("DFS Used: {}\n", Capacity(n.dfs_used()));
  *out += fmt::format("Non DFS Used: {}\n", Capacity(n.non_dfs_used()));
  *out += fmt::format("DFS Remaining: {}\n", Capacity(n.remaining()));
  *out += fmt::format("DFS Used%: {}\n", Percent(Pct(n.dfs_used(), n.capacity())));
  *out += fmt::format("DFS Remaining%: {}\n", Percent(Pct(n.remaining(), n.capacity())));
  *out += fmt::format("Xceivers: {}\n", n.xceivers());
  if (n.failed_volumes() > 0) *out += fmt::format("Failed volumes: {}\n", n.failed_volumes());
  *out += fmt::format("Last contact: {}\n", LongDate(now_ms - n.last_contact_ms()));
  *out += fmt::format("Num of Blocks: {}\n\n", n.num_blocks());
}

}  // namespace

std::string PermissionString(uint32_t mode) {
  std::string s = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (!(mode & (1u << (8 - i)))) s[i] = '-';
  }
  if (mode & 01000) s[8] = (mode & 01) ? 't' : 'T';
  return s;
}

std::string SizeText(uint64_t bytes, bool human) { return human ? HumanSize(bytes) : std::to_string(bytes); }

std::string LsDate(int64_t ms) { return StrfTime(ms, "%Y-%m-%d %H:%M", false); }

std::string LongDate(int64_t ms) { return StrfTime(ms, "%a %b %d %H:%M:%S %Z %Y", false); }

std::string ByteDesc(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  int u = 0;
  while (u < 6 && bytes >= (uint64_t{1} << (10 * (u + 1)))) ++u;
  const uint64_t unit = uint64_t{1} << (10 * u);
  if (bytes % unit == 0) return fmt::format("{} {}", bytes / unit, kUnits[u]);
  std::string s = fmt::format("{:.2f}", double(bytes) / double(unit));
  if (s.rfind("1024", 0) == 0 && u < 6) {  // rounding carried into the next unit
    ++u;
    s = fmt::format("{:.2f}", double(bytes) / double(uint64_t{1} << (10 * u)));
  }
  return s + " " + kUnits[u];
}

std::string Percent(double pct) { return fmt::format("{:.2f}%", pct); }

std::string DatanodeName(const proto::DatanodeId& id) {
  return fmt::format("{}:{} ({})", id.ip(), id.xfer_port(), id.hostname().empty() ? id.ip() : id.hostname());
}

std::string AdminStateText(proto::AdminState state) {
  switch (state) {
    case proto::DECOMMISSION_IN_PROGRESS:
      return "Decommission in progress";
    case proto::DECOMMISSIONED:
      return "Decommissioned";
    default:
      return "Normal";
  }
}

void LsFormatter::Widen(const std::vector<client::FileInfo>& entries) {
  for (const auto& e : entries) {
    repl_ = std::max(repl_, std::to_string(e.replication).size());
    len_ = std::max(len_, std::to_string(e.length).size());
    owner_ = std::max(owner_, e.owner.size());
    group_ = std::max(group_, e.group.size());
  }
}

std::string LsFormatter::Line(const client::FileInfo& info, std::string_view display) const {
  // Hadoop: "%s%s" "%<repl>s " "%-<owner>s " "%-<group>s " "%<len>s " "%s %s"; the
  // second %s is the permission plus ' ' (or '+' with an ACL).
  const std::string repl = info.is_dir ? "-" : std::to_string(info.replication);
  std::string line = fmt::format("{}{} {:>{}} ", info.is_dir ? 'd' : '-', PermissionString(info.mode), repl, repl_);
  line += owner_ > 0 ? fmt::format("{:<{}} ", info.owner, owner_) : info.owner;
  line += group_ > 0 ? fmt::format("{:<{}} ", info.group, group_) : info.group;
  line += fmt::format("{:>{}} {} {}", SizeText(info.length, human_), len_, LsDate(info.mtime_ms), display);
  return line;
}

std::string FormatStat(std::string_view format, const client::FileInfo& info) {
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 == format.size()) {
      out += format[i];
      continue;
    }
    char c = format[++i];
    switch (c) {
      case 'a':
        out += fmt::format("{:o}", info.mode & 07777);
        break;
      case 'A':
        out += PermissionString(info.mode);
        break;
      case 'b':
        out += std::to_string(info.length);
        break;
      case 'F':
        out += info.is_dir ? "directory" : "regular file";
        break;
      case 'g':
        out += info.group;
        break;
      case 'n':
        out += info.name.empty() ? std::string("/") : info.name;
        break;
      case 'o':
        out += std::to_string(info.block_size);
        break;
      case 'r':
        out += std::to_string(info.replication);
        break;
      case 'u':
        out += info.owner;
        break;
      case 'x':
        out += StrfTime(info.atime_ms, "%Y-%m-%d %H:%M:%S", true);
        break;
      case 'X':
        out += std::to_string(info.atime_ms);
        break;
      case 'y':
        out += StrfTime(info.mtime_ms, "%Y-%m-%d %H:%M:%S", true);
        break;
      case 'Y':
        out += std::to_string(info.mtime_ms);
        break;
      default:
        out += '%';
        out += c;
    }
  }
  return out;
}

std::string FormatCount(const client::ContentSummary& cs, bool quota, bool human, std::string_view display) {
  std::string out;
  if (quota) out = fmt::format("{:>12} {:>15} {:>15} {:>15} ", "none", "inf", "none", "inf");
  out += fmt::format("{:>12} {:>12} {:>18} ", SizeText(cs.directory_count, human), SizeText(cs.file_count, human),
                     SizeText(cs.length, human));
  out += display;
  return out;
}

std::string CountHeader(bool quota) {
  std::string out;
  if (quota) out = fmt::format("{:>12} {:>15} {:>15} {:>15} ", "QUOTA", "REM_QUOTA", "SPACE_QUOTA", "REM_SPACE_QUOTA");
  return out + fmt::format("{:>12} {:>12} {:>18} ", "DIR_COUNT", "FILE_COUNT", "CONTENT_SIZE") + "PATHNAME";
}

void Table::AddRow(std::vector<std::string> row) {
  row.resize(widths_.size());
  for (size_t i = 0; i < row.size(); ++i) widths_[i] = std::max(widths_[i], row[i].size());
  rows_.push_back(std::move(row));
}

void Table::Print(std::ostream& os) const {
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      if (right_[i]) {
        line += fmt::format("{:>{}}", row[i], widths_[i]);
      } else if (i + 1 < row.size()) {
        line += fmt::format("{:<{}}", row[i], widths_[i]);
      } else {
        line += row[i];
      }
    }
    os << line << '\n';
  }
}

std::string FormatReport(const proto::GetStatsResponse& stats, std::vector<proto::DatanodeInfo> nodes, int64_t now_ms,
                         bool live_only, bool dead_only, bool decommissioning_only) {
  std::string out;
  out += fmt::format("Cluster ID: {}\n", stats.cluster_id());
  // The NameNode's own sentence when it has one ("Safe mode is ON. The reported
  // blocks ..."), else Hadoop's plain line.
  const std::string& why = stats.safe_mode_status();
  if (why.rfind("Safe mode", 0) == 0) {
    out += why + "\n";
  } else {
    out += std::string(stats.safe_mode() ? "Safe mode is ON" : "Safe mode is OFF") + (why.empty() ? "" : ". " + why) +
           "\n";
  }
  out += fmt::format("Configured Capacity: {}\n", Capacity(stats.capacity()));
  out += fmt::format("Present Capacity: {}\n", Capacity(stats.dfs_used() + stats.remaining()));
  out += fmt::format("DFS Remaining: {}\n", Capacity(stats.remaining()));
  out += fmt::format("DFS Used: {}\n", Capacity(stats.dfs_used()));
  out += fmt::format("DFS Used%: {}\n", Percent(Pct(stats.dfs_used(), stats.capacity())));
  out += "Replicated Blocks:\n";
  out += fmt::format("\tUnder replicated blocks: {}\n", stats.under_replicated_blocks());
  out += fmt::format("\tBlocks with corrupt replicas: {}\n", stats.corrupt_blocks());
  out += fmt::format("\tMissing blocks: {}\n", stats.missing_blocks());
  out += fmt::format("\tMissing blocks (with replication factor 1): {}\n", stats.missing_repl_one_blocks());
  out += fmt::format("\tLow redundancy blocks with highest priority to recover: {}\n",
                     stats.highest_priority_blocks());
  out += fmt::format("\tPending deletion blocks: {}\n", stats.pending_deletion_blocks());
  out += fmt::format("\tExcess replicas: {}\n", stats.excess_replicas());
  out += fmt::format("\tTotal blocks: {}\n", stats.total_blocks());
  out += fmt::format("Files and directories: {} files, {} directories\n", stats.files(), stats.directories());
  if (stats.decommissioning_datanodes() + stats.decommissioned_datanodes() > 0) {
    out += fmt::format("Decommissioning: {} datanode(s) in progress, {} decommissioned\n",
                       stats.decommissioning_datanodes(), stats.decommissioned_datanodes());
  }
  if (stats.journal_syncs() > 0) {
    // How fast the NameNode's disk makes mutations durable: every create,
    // mkdir, rename or delete waits for one of these syncs.
    const double n = static_cast<double>(stats.journal_syncs());
    out += fmt::format("Namespace journal: {} syncs, {:.2f} ms mean, {:.1f} transactions per sync\n",
                       stats.journal_syncs(), stats.journal_sync_micros() / n / 1000.0,
                       stats.journal_transactions() / n);
  }
  out += "\n-------------------------------------------------\n";

  std::sort(nodes.begin(), nodes.end(), [](const proto::DatanodeInfo& a, const proto::DatanodeInfo& b) {
    return std::make_pair(a.id().ip(), a.id().xfer_port()) < std::make_pair(b.id().ip(), b.id().xfer_port());
  });
  if (decommissioning_only) {
    auto in_progress = [](const proto::DatanodeInfo& d) {
      return d.live() && d.admin_state() == proto::DECOMMISSION_IN_PROGRESS;
    };
    out += fmt::format("Decommissioning datanodes ({}):\n\n", std::count_if(nodes.begin(), nodes.end(), in_progress));
    for (const auto& d : nodes) {
      if (in_progress(d)) FormatNode(d, now_ms, &out);
    }
    return out;
  }
  for (bool live : {true, false}) {
    if ((live && dead_only) || (!live && live_only)) continue;
    size_t n = std::count_if(nodes.begin(), nodes.end(), [&](const auto& d) { return d.live() == live; });
    out += fmt::format("{} datanodes ({}):\n\n", live ? "Live" : "Dead", n);
    for (const auto& d : nodes) {
      if (d.live() == live) FormatNode(d, now_ms, &out);
    }
  }
  return out;
}

}  // namespace dfs::cli

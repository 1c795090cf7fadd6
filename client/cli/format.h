// Text layouts of the `dfs` shell, kept byte-compatible with `hdfs dfs` where
// Hadoop has the same output, so that what students learn carries over:
// ls lines and their per-listing column widths (Hadoop's Ls), the du/df tables
// (FsUsage.TableBuilder), count columns (ContentSummary.toString), stat
// specifiers (Stat), and `dfsadmin -report`. Pure functions of their inputs;
// dates use the local time zone except where Hadoop uses UTC (stat).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "client/filesystem.h"

namespace dfs::cli {

// "rwxr-xr-x" (with 't'/'T' for the sticky bit).
std::string PermissionString(uint32_t mode);
// Bytes, or "1.3 K" style (HumanSize) when `human`.
std::string SizeText(uint64_t bytes, bool human);
// "2026-11-23 10:00" in local time, as ls prints.
std::string LsDate(int64_t ms);
// "Mon Nov 23 10:00:00 CET 2026" in local time, as Java's Date prints.
std::string LongDate(int64_t ms);
// "49.09 GB", "24 KB", "0 B": Hadoop's StringUtils.byteDesc.
std::string ByteDesc(uint64_t bytes);
// 12.3456 → "12.35%".
std::string Percent(double pct);

// One ls listing. Column widths grow with every batch of entries passed to
// Widen() and never shrink, exactly as Hadoop's Ls keeps them across a command.
class LsFormatter {
 public:
  explicit LsFormatter(bool human) : human_(human) {}
  void Widen(const std::vector<client::FileInfo>& entries);
  // "drwxr-xr-x   - alice supergroup          0 2026-11-23 10:00 /user/alice/dir"
  std::string Line(const client::FileInfo& info, std::string_view display) const;

 private:
  bool human_;
  size_t repl_ = 3, len_ = 10, owner_ = 0, group_ = 0;  // Hadoop's starting widths
};

// Expands Hadoop stat specifiers: %a %A %b %F %g %n %o %r %u %x %X %y %Y
// (%y/%x: "yyyy-MM-dd HH:mm:ss" in UTC). Unknown specifiers stay as typed.
std::string FormatStat(std::string_view format, const client::FileInfo& info);

// count's columns; with `quota`, the four quota columns first (dfs has no
// quotas yet, so "none inf none inf"). Ends with the path.
std::string FormatCount(const client::ContentSummary& cs, bool quota, bool human, std::string_view display);
// count -v's header line.
std::string CountHeader(bool quota);

// Hadoop's FsUsage.TableBuilder: columns as wide as their widest cell, two
// spaces apart, left-aligned unless marked right-aligned; no trailing spaces.
class Table {
 public:
  explicit Table(size_t columns) : widths_(columns, 0), right_(columns, false) {}
  void SetRightAlign(size_t column) { right_[column] = true; }
  void AddRow(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  void Print(std::ostream& os) const;

 private:
  std::vector<size_t> widths_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// "127.0.0.1:9866 (dn1)": how the report names a DataNode (Hadoop's Name: line).
std::string DatanodeName(const proto::DatanodeId& id);
// Hadoop's "Decommission Status" words: "Normal", "Decommission in progress", "Decommissioned".
std::string AdminStateText(proto::AdminState state);

// `dfs admin report` (hdfs dfsadmin -report). `live`/`dead` select sections;
// both false means both; `decommissioning_only` lists only the live nodes
// being decommissioned (Hadoop's -decommissioning).
std::string FormatReport(const proto::GetStatsResponse& stats, std::vector<proto::DatanodeInfo> nodes, int64_t now_ms,
                         bool live_only = false, bool dead_only = false, bool decommissioning_only = false);

}  // namespace dfs::cli

// `dfs fsck <path> [-files [-blocks [-locations | -replicaDetails]]]`, computed on the client:
// walk the tree with List, ask GetBlockLocations for every file, and judge each
// block by its replicas, split by the admin state of their DataNodes (from one
// GetDatanodeReport): live (in service), decommissioning, decommissioned. The
// report keeps the shape of `hdfs fsck`, so that a lab sheet written for
// Hadoop reads the same:
//
//   /user/alice/f 1366 bytes, replicated: replication=3, 1 block(s):  OK
//   0. blk_1073741825_1001 len=1366 Live_repl=3  [DatanodeInfoWithStorage[127.0.0.1:9866,<uuid>,DISK], ...]
//   ...
//   The filesystem under path '/user/alice' is HEALTHY
//
// A block with no replica at all is missing, one whose every replica is
// corrupt is corrupt; either makes the path CORRUPT (exit 1). As in Hadoop,
// a block is under-replicated (still HEALTHY) when its replicas, those on
// decommissioning nodes included, are fewer than the file's replication, and
// over-replicated when its live replicas alone are more. (`dfs admin report`
// counts a block under-replicated as soon as its in-service replicas are too
// few, so during a decommission the two differ, as they do in Hadoop.) The
// last block of a file still being written is not judged.
#include <fmt/format.h>

#include <map>
#include <ostream>

#include "client/cli/commands.h"
#include "client/cli/format.h"
#include "client/cli/glob.h"

namespace dfs::cli {

namespace {

using client::BlockLocation;
using client::FileInfo;

struct FsckOptions {
  bool files = false;
  bool blocks = false;
  bool locations = false;
  bool replica_details = false;  // -replicaDetails: each location's state, (LIVE), (DECOMMISSIONING), ...
};

struct Totals {
  uint64_t dirs = 0, files = 0, size = 0, blocks = 0;
  uint64_t min_replicated = 0, over = 0, under = 0, missing = 0, corrupt = 0;
  uint64_t replicas = 0, expected_replicas = 0, missing_replicas = 0;
  uint64_t decommissioned = 0, decommissioning = 0;
};

using AdminStates = std::map<std::string, proto::AdminState>;  // DataNode uuid → admin state

std::string BlockName(const BlockLocation& b) { return fmt::format("blk_{}_{}", b.block.value(), b.gen_stamp); }

proto::AdminState StateOf(const AdminStates& states, const proto::DatanodeId& id) {
  auto it = states.find(id.uuid());
  return it == states.end() ? proto::ADMIN_NORMAL : it->second;
}

std::string Locations(const BlockLocation& b, const AdminStates& states, bool details) {
  std::string out = "[";
  for (size_t i = 0; i < b.replicas.size(); ++i) {
    const auto& r = b.replicas[i];
    out += fmt::format("{}DatanodeInfoWithStorage[{}:{},{},DISK]", i ? ", " : "", r.ip(), r.xfer_port(), r.uuid());
    if (!details) continue;
    if (b.corrupt) {
      out += "(CORRUPT)";
      continue;
    }
    switch (StateOf(states, r)) {
      case proto::DECOMMISSIONED:
        out += "(DECOMMISSIONED)";
        break;
      case proto::DECOMMISSION_IN_PROGRESS:
        out += "(DECOMMISSIONING)";
        break;
      default:
        out += "(LIVE)";
    }
  }
  return out + "]";
}

double PctOf(uint64_t part, uint64_t whole) { return whole ? 100.0 * double(part) / double(whole) : 0.0; }

class Fsck {
 public:
  Fsck(Context& ctx, FsckOptions opts) : ctx_(ctx), opts_(opts) {
    // Without the DataNode report every replica counts as live.
    auto nodes = ctx_.fs().GetDatanodeReport();
    if (nodes.ok()) {
      for (const auto& n : *nodes) states_[n.id().uuid()] = n.admin_state();
    }
  }

  void Visit(const PathArg& p, const FileInfo& info) {
    if (info.is_dir) {
      ++t_.dirs;
      if (opts_.files) ctx_.out << p.path << " <dir>\n";
      return;
    }
    auto blocks = ctx_.fs().GetBlockLocations(p.path);
    if (!blocks.ok()) {
      ctx_.Error(p.path, blocks.status());
      return;
    }
    CheckFile(p.path, info, *blocks);
  }

  void PrintSummary(const std::string& path, int64_t started_ms) {
    const bool healthy = t_.missing == 0 && t_.corrupt == 0;
    auto& out = ctx_.out;
    out << "\nStatus: " << (healthy ? "HEALTHY" : "CORRUPT") << '\n';
    auto stats = ctx_.fs().GetStats();
    if (stats.ok()) out << " Number of data-nodes:\t" << stats->live_datanodes() << '\n';
    out << " Total dirs:\t\t\t" << t_.dirs << '\n';
    out << " Total symlinks:\t\t0\n\n";
    out << "Replicated Blocks:\n";
    out << " Total size:\t" << t_.size << " B\n";
    out << " Total files:\t" << t_.files << '\n';
    out << fmt::format(" Total blocks (validated):\t{} (avg. block size {} B)\n", t_.blocks,
                       t_.blocks ? t_.size / t_.blocks : 0);
    out << fmt::format(" Minimally replicated blocks:\t{} ({:.1f} %)\n", t_.min_replicated,
                       PctOf(t_.min_replicated, t_.blocks));
    out << fmt::format(" Over-replicated blocks:\t{} ({:.1f} %)\n", t_.over, PctOf(t_.over, t_.blocks));
    out << fmt::format(" Under-replicated blocks:\t{} ({:.1f} %)\n", t_.under, PctOf(t_.under, t_.blocks));
    out << " Mis-replicated blocks:\t\t0 (0.0 %)\n";  // no racks, so no placement policy to violate
    out << " Default replication factor:\t" << ctx_.fs().config().GetInt("dfs.replication") << '\n';
    out << fmt::format(" Average block replication:\t{:.1f}\n",
                       t_.blocks ? double(t_.replicas) / double(t_.blocks) : 0.0);
    out << " Missing blocks:\t\t" << t_.missing << '\n';
    out << " Corrupt blocks:\t\t" << t_.corrupt << '\n';
    out << fmt::format(" Missing replicas:\t\t{} ({:.1f} %)\n", t_.missing_replicas,
                       PctOf(t_.missing_replicas, t_.expected_replicas));
    if (t_.decommissioned > 0) out << " DecommissionedReplicas:\t" << t_.decommissioned << '\n';
    if (t_.decommissioning > 0) out << " DecommissioningReplicas:\t" << t_.decommissioning << '\n';
    out << fmt::format("\nFSCK ended at {} in {} milliseconds\n\n\n", LongDate(ctx_.now_ms()),
                       ctx_.now_ms() - started_ms);
    out << "The filesystem under path '" << path << "' is " << (healthy ? "HEALTHY" : "CORRUPT") << '\n';
  }

  bool healthy() const { return t_.missing == 0 && t_.corrupt == 0; }

 private:
  void CheckFile(const std::string& path, const FileInfo& info, const std::vector<BlockLocation>& blocks) {
    ++t_.files;
    t_.size += info.length;
    std::vector<std::string> problems, lines;
    uint64_t missing = 0, missing_bytes = 0, corrupt = 0, corrupt_bytes = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      const BlockLocation& b = blocks[i];
      uint64_t live = 0, decommissioning = 0, decommissioned = 0;
      for (const auto& r : b.replicas) {
        if (b.corrupt) break;  // every replica listed is corrupt
        switch (StateOf(states_, r)) {
          case proto::DECOMMISSION_IN_PROGRESS:
            ++decommissioning;
            break;
          case proto::DECOMMISSIONED:
            ++decommissioned;
            break;
          default:
            ++live;
        }
      }
      const uint64_t total = live + decommissioning + decommissioned;
      const bool judged = !(info.under_construction && i + 1 == blocks.size());
      std::string line = fmt::format("{}. {} len={} Live_repl={}", i, BlockName(b), b.length, live);
      ++t_.blocks;
      t_.replicas += total;
      t_.decommissioning += decommissioning;
      t_.decommissioned += decommissioned;
      t_.expected_replicas += info.replication;
      if (total >= 1) ++t_.min_replicated;
      if (!judged) {
      } else if (b.corrupt) {
        ++corrupt;
        corrupt_bytes += b.length;
        line += " CORRUPT!";
      } else if (total == 0) {
        ++missing;
        missing_bytes += b.length;
        line += " MISSING!";
      } else if (total < info.replication) {
        ++t_.under;
        t_.missing_replicas += info.replication - total;
        problems.push_back(fmt::format("Under replicated {}. Target Replicas is {} but found {} live replica(s), {} "
                                       "decommissioned replica(s), {} decommissioning replica(s).",
                                       BlockName(b), info.replication, live, decommissioned, decommissioning));
      }
      if (judged && live > info.replication) ++t_.over;
      if (opts_.locations && (total > 0 || b.corrupt)) {
        line += "  " + Locations(b, states_, opts_.replica_details);
      }
      lines.push_back(std::move(line));
    }
    t_.missing += missing;
    t_.corrupt += corrupt;
    if (missing) problems.push_back(fmt::format("MISSING {} blocks of total size {} B.", missing, missing_bytes));
    if (corrupt) problems.push_back(fmt::format("CORRUPT {} blocks of total size {} B.", corrupt, corrupt_bytes));

    if (opts_.files) {
      ctx_.out << fmt::format("{} {} bytes, replicated: replication={}, {} block(s){}: ", path, info.length,
                              info.replication, blocks.size(), info.under_construction ? ", OPENFORWRITE" : "");
      if (problems.empty()) {
        ctx_.out << " OK\n";
      } else {
        for (size_t i = 0; i < problems.size(); ++i) ctx_.out << (i ? "\n" + path + ":  " : " ") << problems[i];
        ctx_.out << '\n';
      }
      if (opts_.blocks) {
        for (const auto& l : lines) ctx_.out << l << '\n';
        if (!lines.empty()) ctx_.out << '\n';
      }
    } else {
      for (const auto& pr : problems) ctx_.out << path << ":  " << pr << '\n';
    }
  }

  Context& ctx_;
  FsckOptions opts_;
  Totals t_;
  AdminStates states_;
};

}  // namespace

int RunFsck(Context& ctx, const Flags&, const Args& args) {
  FsckOptions opts;
  std::string path_arg;
  for (const auto& a : args) {
    if (a == "-files") {
      opts.files = true;
    } else if (a == "-blocks") {
      opts.files = opts.blocks = true;
    } else if (a == "-locations" || a == "-racks") {
      opts.files = opts.blocks = opts.locations = true;
    } else if (a == "-replicaDetails") {
      opts.files = opts.blocks = opts.locations = opts.replica_details = true;
    } else if (a == "-openforwrite") {
      // Open files are always listed; accepted for Hadoop's sake.
    } else if (!a.empty() && a[0] == '-') {
      return ctx.UsageError("Illegal option " + a);
    } else if (path_arg.empty()) {
      path_arg = a;
    } else {
      return ctx.UsageError("fsck checks one path, got '" + path_arg + "' and '" + a + "'");
    }
  }
  if (path_arg.empty()) return ctx.UsageError("Not enough arguments: expected a path");
  const PathArg root = ResolveArg(ctx.fs(), path_arg);
  auto info = ctx.fs().GetFileInfo(root.path);
  if (!info.ok()) {
    ctx.Error(path_arg, info.status());
    return ctx.ExitCode();
  }
  const int64_t started = ctx.now_ms();
  ctx.out << "Connecting to namenode at " << ctx.fs().namenode_address() << '\n';
  ctx.out << "FSCK started by " << ctx.fs().user() << " for path " << root.path << " at " << LongDate(started)
          << "\n\n";
  Fsck fsck(ctx, opts);
  Walk(ctx, PathArg{root.path, root.path}, *info, true,
       [&](const PathArg& p, const FileInfo& fi) { fsck.Visit(p, fi); });
  fsck.PrintSummary(root.path, started);
  return fsck.healthy() && !ctx.failed() ? kExitOk : kExitFailed;
}

}  // namespace dfs::cli

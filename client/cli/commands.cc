#include "client/cli/commands.h"

#include <ostream>

namespace dfs::cli {

namespace {

// Options parsed by the command itself (fsck takes them after the path, admin
// has subcommands spelled `-report` or `report`).
constexpr std::string_view kRawArgs = "*";

const std::vector<Command> kCommands = {
    {"ls",
     {},
     "d h R",
     "[-d] [-h] [-R] [<path> ...]",
     "List the contents that match the path patterns; with no path, the home directory "
     "(/user/<name>). -d lists directories as plain files, -h prints human-readable sizes "
     "(1.3 K), -R lists subdirectories recursively.",
     0,
     -1,
     true,
     RunLs},
    {"mkdir",
     {},
     "p",
     "[-p] <path> ...",
     "Create directories. -p creates missing parents and does not fail when the directory exists.",
     1,
     -1,
     true,
     RunMkdir},
    {"put",
     {"copyFromLocal"},
     "f p l d",
     "[-f] [-p] [-d] <localsrc> ... [<dst>]",
     "Copy local files (directories recursively) into dfs (default <dst>: the home directory); '-' reads "
     "stdin. Each file is written "
     "to <dst>._COPYING_ and renamed into place when complete. -f overwrites an existing file, -p "
     "keeps modification times and permissions, -d writes <dst> directly (no temporary). "
     "dfs.replication and dfs.blocksize (e.g. -D dfs.blocksize=4m) apply to the new files.",
     1,
     -1,
     true,
     RunPut},
    {"appendToFile",
     {},
     "",
     "<localsrc> ... <dst>",
     "Append local files, in order, to a dfs file; '-' reads stdin (and must then be the only source). "
     "<dst> is created when it does not exist (its parent must). The appended bytes start a new "
     "block: the file's existing blocks are never rewritten. Fails while another client is writing "
     "<dst>.",
     2,
     -1,
     true,
     RunAppendToFile},
    {"get",
     {"copyToLocal"},
     "f p ignoreCrc crc",
     "[-f] [-p] <src> ... [<localdst>]",
     "Copy dfs files (directories recursively) to the local file system. -f overwrites an "
     "existing local file, -p keeps modification times and permissions. Checksums are always verified.",
     1,
     -1,
     true,
     RunGet},
    {"cat", {}, "ignoreCrc", "<src> ...", "Print the contents of files to stdout.", 1, -1, true, RunCat},
    {"tail",
     {},
     "f",
     "[-f] <file>",
     "Print the last kilobyte of a file. -f keeps printing data as the file grows (checks once a second).",
     1,
     1,
     true,
     RunTail},
    {"rm",
     {},
     "f r R skipTrash",
     "[-f] [-r|-R] [-skipTrash] <src> ...",
     "Delete files. -r deletes directories and their contents, -f does not complain about missing "
     "paths. dfs has no trash, so -skipTrash changes nothing.",
     1,
     -1,
     true,
     RunRm},
    {"rmdir",
     {},
     "-ignore-fail-on-non-empty",
     "[--ignore-fail-on-non-empty] <dir> ...",
     "Delete empty directories.",
     1,
     -1,
     true,
     RunRmdir},
    {"mv",
     {},
     "",
     "<src> ... <dst>",
     "Move files. When <dst> is an existing directory the sources move inside it; with several "
     "sources it must be one.",
     2,
     -1,
     true,
     RunMv},
    {"cp",
     {},
     "f p",
     "[-f] [-p] <src> ... <dst>",
     "Copy files (directories recursively) within dfs. -f overwrites existing files, -p keeps "
     "modification times and permissions.",
     2,
     -1,
     true,
     RunCp},
    {"du",
     {},
     "s h v x",
     "[-s] [-h] [-v] <path> ...",
     "Show the size and the space consumed by all replicas of each file, or of each entry of a "
     "directory. -s summarises each path instead, -h prints human-readable sizes, -v prints a header.",
     0,
     -1,
     true,
     RunDu},
    {"df",
     {},
     "h",
     "[-h] [<path> ...]",
     "Show the capacity, used and free space of the file system.",
     0,
     -1,
     true,
     RunDf},
    {"count",
     {},
     "q h v",
     "[-q] [-h] [-v] <path> ...",
     "Count the directories, files and bytes under each path: DIR_COUNT FILE_COUNT CONTENT_SIZE "
     "PATHNAME. -q adds the quota columns, -h human-readable sizes, -v a header line.",
     1,
     -1,
     true,
     RunCount},
    {"stat",
     {},
     "",
     "[format] <path> ...",
     "Print information about each path. The format (default %y) takes %a (octal permissions), %A "
     "(rwx permissions), %b (length in bytes), %F (type), %g (group), %n (name), %o (block size), "
     "%r (replication), %u (owner), %x/%X (access time, UTC / ms), %y/%Y (modification time, UTC / ms).",
     1,
     -1,
     true,
     RunStat},
    {"test",
     {},
     "d e f s z",
     "-[defsz] <path>",
     "Answer a question with the exit code, printing nothing: -d is a directory, -e exists, -f is "
     "a file, -s is not empty, -z is empty. 0 means yes, 1 no.",
     1,
     1,
     true,
     RunTest},
    {"setrep",
     {},
     "R w",
     "[-R] [-w] <rep> <path> ...",
     "Set the replication of files (of every file under a directory). -w waits until every block "
     "has exactly that many replicas, which can take a while. -R is accepted for compatibility.",
     2,
     -1,
     true,
     RunSetrep},
    {"touchz", {}, "", "<path> ...", "Create empty files. An existing file must be empty.", 1, -1, true, RunTouchz},
    {"getmerge",
     {},
     "nl skip-empty-file",
     "[-nl] [-skip-empty-file] <src> <localdst>",
     "Concatenate the files in a dfs directory (or matching a pattern) into one local file. -nl "
     "adds a newline after each file, -skip-empty-file leaves empty files out.",
     2,
     2,
     true,
     RunGetmerge},
    {"chmod",
     {},
     "R",
     "[-R] <octal mode> <path> ...",
     "Change permissions, given in octal (755). -R recurses.",
     2,
     -1,
     true,
     RunChmod},
    {"chown",
     {},
     "R",
     "[-R] [OWNER][:[GROUP]] <path> ...",
     "Change owner and/or group. -R recurses.",
     2,
     -1,
     true,
     RunChown},
    {"chgrp", {}, "R", "[-R] GROUP <path> ...", "Change the group. -R recurses.", 2, -1, true, RunChgrp},
    {"fsck",
     {},
     kRawArgs,
     "<path> [-files [-blocks [-locations | -replicaDetails]]]",
     "Check the health of the files under a path: every block must have live replicas, as many as "
     "the file's replication; under-, over-replicated, missing and corrupt blocks are listed and "
     "counted. -replicaDetails marks each replica LIVE, DECOMMISSIONING, DECOMMISSIONED or CORRUPT. "
     "Exits 1 when blocks are missing or corrupt.",
     1,
     -1,
     true,
     RunFsck},
    {"admin",
     {"dfsadmin"},
     kRawArgs,
     "report [-live] [-dead] [-decommissioning] | safemode get|enter|leave|wait | decommission [-w] "
     "<datanode>... | recommission <datanode>...",
     "Cluster administration. report: capacity, block health and every DataNode (like hdfs "
     "dfsadmin -report). safemode: show, enter or leave the NameNode's read-only safe mode, or wait "
     "until it is off. decommission: drain DataNodes (named by uuid, ip:port or hostname:port) "
     "before switching them off: they take no new blocks and their replicas are copied elsewhere "
     "until the report says Decommissioned (-w waits for it); recommission puts them back in "
     "service. Options may also be spelled -report, -safemode, -decommission.",
     1,
     -1,
     true,
     RunAdmin},
    {"streaming",
     {"jar"},
     kRawArgs,
     "-input <path> -output <dir> -mapper <cmd> [-reducer <cmd>|NONE] [-combiner <cmd>] [-file <f>]... "
     "[-files a,b] [-numReduceTasks N] [-D key=value]... [-cmdenv K=V]... [-partitioner "
     "KeyFieldBasedPartitioner] [-overwrite] [-background]",
     "Run a Hadoop-streaming MapReduce job on the cluster: the mapper and reducer are programs (Python "
     "scripts, usually) that read lines on stdin and write key<TAB>value lines on stdout. Scripts named "
     "with -file are shipped to every task; Windows line endings and missing #! lines are fixed for "
     "you. Progress is shown until the job ends; Ctrl-C stops watching, not the job. "
     "`dfs streaming -help` lists every option.",
     0,
     -1,
     true,
     RunStreaming},
    {"job",
     {},
     kRawArgs,
     "-list [all] | -status <job-id> | -kill <job-id> | -logs <job-id>",
     "Streaming jobs on the cluster: list the running ones (all: the finished ones too), show one "
     "job's progress and counters, kill it, or print the stderr of every failed attempt.",
     1,
     -1,
     true,
     RunJob},
    {"mount",
     {},
     kRawArgs,
     "[-f] [-o opt,...] [-D key=value]... <mountpoint>",
     "Mount the cluster's namespace at a local directory with FUSE, so ordinary tools and Python's open() "
     "work on it. Runs in the background (-f: in the foreground) until `dfs umount`. Files are written "
     "sequentially: from the start, or appended to; a write anywhere else fails with EOPNOTSUPP. "
     "`dfs mount --help` lists every option.",
     1,
     -1,
     false,
     RunMount},
    {"umount",
     {"unmount"},
     "",
     "<mountpoint>",
     "Unmount a directory mounted with `dfs mount`; the mount's daemon then exits.",
     1,
     1,
     false,
     RunUmount},
    {"help", {}, "", "[cmd ...]", "Show the description of commands.", 0, -1, false, RunHelp},
    {"usage", {}, "", "[cmd ...]", "Show the usage of commands.", 0, -1, false, RunUsage},
};

void PrintUsage(std::ostream& os, const Command& c) { os << "Usage: dfs " << c.name << ' ' << c.usage << '\n'; }

void PrintGenericUsage(std::ostream& os) {
  os << "Usage: dfs [generic options] <command> [options] [args]\n"
        "Generic options:\n"
        "  -D <key=value>                  set a configuration value (e.g. -D dfs.replication=2)\n"
        "  -fs, --namenode <host:port>     the NameNode to use (default: fs.defaultFS)\n"
        "  -conf, --conf <file>            the configuration file\n"
        "Commands (also accepted with a leading '-', as in `hdfs dfs -ls`):\n";
  for (const auto& c : AllCommands()) {
    os << "  " << c.name << ' ' << c.usage << '\n';
  }
}

// Names the operands select, or every command.
std::vector<const Command*> Select(Context& ctx, const Args& args) {
  std::vector<const Command*> out;
  if (args.empty()) {
    for (const auto& c : AllCommands()) out.push_back(&c);
  }
  for (const auto& a : args) {
    if (const Command* c = FindCommand(a)) {
      out.push_back(c);
    } else {
      ctx.Error("Unknown command '" + a + "'");
    }
  }
  return out;
}

}  // namespace

const std::vector<Command>& AllCommands() { return kCommands; }

const Command* FindCommand(std::string_view name) {
  if (name.size() > 1 && name[0] == '-') name.remove_prefix(1);
  for (const auto& c : kCommands) {
    if (c.name == name) return &c;
    for (auto a : c.aliases) {
      if (a == name) return &c;
    }
  }
  return nullptr;
}

int RunHelp(Context& ctx, const Flags&, const Args& args) {
  if (args.empty()) PrintGenericUsage(ctx.out);
  for (const Command* c : Select(ctx, args)) {
    ctx.out << '\n';
    PrintUsage(ctx.out, *c);
    if (!c->aliases.empty()) {
      ctx.out << "Also called:";
      for (auto a : c->aliases) ctx.out << ' ' << a;
      ctx.out << '\n';
    }
    ctx.out << "  " << c->help << '\n';
  }
  return ctx.ExitCode();
}

int RunUsage(Context& ctx, const Flags&, const Args& args) {
  if (args.empty()) {
    PrintGenericUsage(ctx.out);
    return kExitOk;
  }
  for (const Command* c : Select(ctx, args)) PrintUsage(ctx.out, *c);
  return ctx.ExitCode();
}

}  // namespace dfs::cli

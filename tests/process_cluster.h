// ProcessCluster: the real `dfs-namenode` and `dfs-datanode` binaries run as
// child processes, for fault-injection tests (kill -9, SIGSTOP, edits of the
// files on disk, network namespaces). Modelled on Kudu's ExternalMiniCluster;
// the in-process MiniCluster (mini_cluster.h) stays the tool for everything
// that does not need a real process boundary.
//
// Everything lives in one fresh temporary directory: dfs.conf (the keys every
// daemon and client share), nn/ (the namespace), dnN/ (data dirs), logs/ (one
// log per daemon, appended across restarts with a marker line per start). The
// NameNode listens on a fixed port picked below the kernel's ephemeral range,
// so that a restart finds the same port free and the DataNodes (which never
// re-resolve the NameNode's address) reconnect by themselves; DataNodes use
// port 0. Ports are read from the daemons' --port-file.
//
// Children: started with fork/exec from the calling thread, stdin from
// /dev/null, stdout and stderr to their log, every other descriptor closed,
// PR_SET_PDEATHSIG=SIGKILL so that nothing outlives a crashed test binary.
// The destructor SIGKILLs and reaps every child; when the running Catch2 test
// has failed (or an exception is unwinding) it first prints the tail of every
// log. With DFS_TEST_KEEP=1 it copies the whole directory to <dir>.kept.
//
// Thread-safety: drive the cluster from one thread (the test's). Start
// children from a thread that outlives them: PR_SET_PDEATHSIG fires when the
// forking *thread* exits. Clients from NewClient() may be used from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client/filesystem.h"
#include "common/config.h"
#include "common/status.h"
#include "tests/mini_cluster.h"

namespace dfs::test {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// One child process. Destroying it SIGKILLs and reaps it.
class ChildProcess {
 public:
  struct Spec {
    std::vector<std::string> argv;  // argv[0] is the path of the binary
    std::string output;             // stdout and stderr go here (appended); empty: /dev/null
    std::string stderr_output;      // if set, stderr goes here instead
    bool stdin_pipe = false;        // else stdin is /dev/null
    std::string netns;              // run in this network namespace (/run/netns/<name>)
    std::map<std::string, std::optional<std::string>> env;  // changes to the environment; nullopt unsets
  };

  static Result<std::unique_ptr<ChildProcess>> Spawn(const Spec& spec);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Write end of the child's stdin (stdin_pipe), or -1.
  int stdin_fd() const { return stdin_fd_; }
  Status WriteStdin(const void* data, size_t n);
  void CloseStdin();
  Status Signal(int sig);
  // Reaps the child if it has exited; true while it runs.
  bool Running();
  // Waits for the child to exit; its wait status, or TimedOut.
  Result<int> Wait(std::chrono::milliseconds deadline);
  // Sends sig and waits for the exit (escalating to SIGKILL after `deadline`).
  void Kill(int sig = SIGKILL, std::chrono::milliseconds deadline = std::chrono::seconds(10));
  // The wait status once reaped.
  std::optional<int> wait_status() const { return status_; }

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::optional<int> status_;
};

// "exited with 1", "killed by signal 9 (Killed)", ...
std::string DescribeWaitStatus(int status);

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
  std::string ToString() const;  // for INFO(): exit code, stdout and stderr
};

// Runs a command to completion (killed after `deadline`), capturing its output.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds deadline = std::chrono::seconds(60),
                                 const std::string& netns = "");

// Last `lines` lines of a text file ("" when it does not exist).
std::string TailFile(const std::string& path, size_t lines = 40);

class ProcessCluster {
 public:
  // Per-DataNode settings (index → settings in Options::datanode).
  struct DataNodeOptions {
    std::string host;    // address to serve on; empty: Options::host
    std::string netns;   // network namespace to run in; empty: the caller's
    KeyValues conf;      // extra -D keys for this DataNode only
  };
  struct Options {
    int num_datanodes = 3;
    uint64_t block_size = 1 << 20;
    std::string host = "127.0.0.1";  // the NameNode's and DataNodes' address
    // Overrides of the defaults below, written into dfs.conf (so they reach
    // every daemon, the clients and the dfs CLI).
    KeyValues conf;
    KeyValues namenode_conf;  // -D keys for the NameNode only
    std::map<int, DataNodeOptions> datanode;
    bool wait_for_datanodes = true;  // Start() returns once all are live and safe mode is off
  };
  // Defaults of every cluster: 1 MiB blocks (Options::block_size), 1 s
  // heartbeats, dead after 4 s, replication checked every 500 ms, no fsync on
  // close (a killed process loses no page cache), log level info (or
  // $DFS_TEST_LOG).
  static KeyValues DefaultConf();

  static Result<std::unique_ptr<ProcessCluster>> Start(const Options& options);
  static Result<std::unique_ptr<ProcessCluster>> Start() { return Start(Options{}); }
  ~ProcessCluster();

  // ---- NameNode -----------------------------------------------------------
  // Starts it on its port (the same one every time) and waits for its port file.
  Status StartNameNode();
  // Sends sig; SIGKILL, SIGTERM and SIGINT wait for the exit (reaped).
  Status KillNameNode(int sig = SIGKILL);
  // Kill (sig) and start again with the same directory and port.
  Status RestartNameNode(int sig = SIGKILL);
  Status PauseNameNode() { return KillNameNode(SIGSTOP); }
  Status ResumeNameNode() { return KillNameNode(SIGCONT); }
  pid_t namenode_pid() const;
  std::string namenode_address() const;  // host:port
  uint16_t namenode_port() const { return nn_port_; }
  std::string namenode_log() const;

  // ---- DataNodes ----------------------------------------------------------
  // Starts DataNode i with its data dir (kept across restarts); waits for its port file.
  Status StartDataNode(int i);
  Status KillDataNode(int i, int sig = SIGKILL);
  Status RestartDataNode(int i, int sig = SIGKILL);
  Status PauseDataNode(int i) { return KillDataNode(i, SIGSTOP); }
  Status ResumeDataNode(int i) { return KillDataNode(i, SIGCONT); }
  // A new DataNode (next index) with `options`; returns its index.
  Result<int> AddDataNode(const DataNodeOptions& options = {});
  pid_t pid(int i) const;  // DataNode i, -1 when not running
  uint16_t datanode_port(int i) const;  // its data transfer port (0 when not running)
  std::string datanode_dir(int i) const;
  std::string datanode_log(int i) const;
  int num_datanodes() const { return static_cast<int>(dns_.size()); }
  // The DataNode serving on this data transfer port, or -1.
  int DataNodeByPort(uint16_t port) const;
  // The DataNodes holding a block's replicas, as the NameNode lists them
  // (-1 for a port no running DataNode serves on).
  std::vector<int> Holders(const client::BlockLocation& block) const;

  // Waits until every block of `path` has exactly n replicas, both in the
  // NameNode's view and as finalized files on disk. A writer's close returns
  // once dfs.namenode.replication.min replicas are reported, so tests that
  // look at replicas right after a write wait for this first.
  Status WaitForReplicas(client::FileSystem& fs, const std::string& path, int n,
                         std::chrono::milliseconds deadline = std::chrono::seconds(20));
  // Waits until at least n DataNodes are live at the NameNode and it is out of safe mode.
  Status WaitForDatanodes(int n, std::chrono::milliseconds deadline = std::chrono::seconds(30));
  // OK when every daemon that should run does; otherwise names the ones that
  // died by themselves (with the tail of their logs).
  Status CheckDaemonsAlive();

  // ---- Clients ----------------------------------------------------------
  std::unique_ptr<client::FileSystem> NewClient(const KeyValues& conf = {});
  Config ClientConfig() const;
  // Runs the dfs shell against this cluster: `dfs --conf <dfs.conf> -fs <nn> args...`.
  Result<CommandResult> RunDfs(const std::vector<std::string>& args,
                               std::chrono::milliseconds deadline = std::chrono::seconds(60));
  // Starts the dfs shell without waiting (e.g. `put - /f` fed through stdin).
  Result<std::unique_ptr<ChildProcess>> SpawnDfs(const std::vector<std::string>& args, bool stdin_pipe,
                                                 const std::string& output);
  // argv prefix for running the dfs shell on this cluster by hand.
  std::vector<std::string> DfsCommand() const;

  // ---- Files on disk ------------------------------------------------------
  struct ReplicaFile {
    int datanode;
    std::string path;  // the data file; path + ".meta" is its checksums
  };
  // Finalized replicas of a block in every DataNode's data dir (running or not).
  std::vector<ReplicaFile> FindReplicas(uint64_t block_id) const;
  // Files under a DataNode's tmp/ (replicas being written).
  std::vector<std::string> TmpFiles(int i) const;

  const std::string& dir() const { return tmp_.path(); }
  const std::string& conf_file() const { return conf_file_; }
  // The tail of every daemon's log, for a failure message.
  std::string DumpLogs(size_t lines = 40) const;

 private:
  struct Daemon {
    std::string name;  // "namenode", "datanode3"
    std::string dir;
    std::string log;
    std::string port_file;
    std::string netns;
    std::string host;               // the address it serves on
    std::vector<std::string> args;  // flags after the binary
    std::unique_ptr<ChildProcess> proc;
    bool should_run = false;
    uint16_t port = 0;
  };

  ProcessCluster() = default;
  Status StartDaemon(Daemon& d, const std::string& binary, const std::string& port_key);
  Status SignalDaemon(Daemon& d, int sig);
  Status WriteConf();
  std::vector<std::string> DataNodeArgs(int i) const;

  Options opts_;
  TempDir tmp_;
  std::string conf_file_;
  KeyValues conf_;  // everything in dfs.conf
  uint16_t nn_port_ = 0;
  Daemon nn_;
  std::vector<Daemon> dns_;
  std::map<int, DataNodeOptions> dn_opts_;
};

// A sandbox of two network namespaces joined by a veth pair, for partition
// tests: "a" (10.213.0.1/24 on veth "dfsa") and "b" (10.213.0.2/24 on "dfsb").
// Nothing is added to or changed in the caller's own namespace. The names
// carry the pid, and namespaces left by a test binary that died are removed by
// the next Create(). The destructor deletes both (after the processes in them
// are gone: destroy the ProcessCluster first).
class NetnsPair {
 public:
  static constexpr const char* kAddrA = "10.213.0.1";
  static constexpr const char* kAddrB = "10.213.0.2";

  // Unavailable (with the reason) when namespaces cannot be made here: not
  // root, no CAP_SYS_ADMIN, no `ip` binary, no veth support.
  static Result<std::unique_ptr<NetnsPair>> Create();
  ~NetnsPair();

  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  // Cuts or restores the link by taking b's end of the veth pair down or up.
  Status SetLinkUp(bool up);
  // Moves the calling thread into namespace a until the returned guard dies
  // (threads it creates meanwhile are in a too).
  class Entered {
   public:
    explicit Entered(int saved_fd) : saved_(saved_fd) {}
    ~Entered();
    Entered(const Entered&) = delete;
    Entered& operator=(const Entered&) = delete;

   private:
    int saved_;
  };
  Result<std::unique_ptr<Entered>> EnterA();

 private:
  NetnsPair() = default;
  std::string a_, b_;
};

// Whether this build knows a configuration key (features land key first).
bool IsKnownConfigKey(const std::string& key);

// The seed of a randomized test: Catch2's --rng-seed when given, else a fresh
// one each run (so that CI explores), which the test reports with INFO so that
// a failure can be replayed with `--rng-seed <seed>`.
uint64_t TestSeed();

// Milliseconds since t, for the durations a test reports.
inline int64_t MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

// Stops (sets *stop) and joins a test's helper thread when it goes out of
// scope, so that a failed REQUIRE does not destroy a joinable std::thread.
class ScopedJoin {
 public:
  ScopedJoin(std::thread* t, std::atomic<bool>* stop) : t_(t), stop_(stop) {}
  ~ScopedJoin() { Join(); }
  void Join() {
    if (stop_) *stop_ = true;
    if (t_->joinable()) t_->join();
  }

 private:
  std::thread* t_;
  std::atomic<bool>* stop_;
};

// Prefix printed by a test that cannot run here; ctest reports it as skipped
// (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt).
inline constexpr const char* kSkipMarker = "DFS-TEST-SKIPPED:";

}  // namespace dfs::test

// Catch2's listener interface, to notice a failed assertion of the running test.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "tests/process_cluster.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

extern char** environ;

namespace dfs::test {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Set when an assertion of the running test case fails; read by the cluster's
// destructor to decide whether to print the daemons' logs.
std::atomic<bool> g_test_failed{false};

class FailureListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    g_test_failed = false;
    TestEventListenerBase::testCaseStarting(info);
  }
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (!stats.assertionResult.isOk()) g_test_failed = true;
    return TestEventListenerBase::assertionEnded(stats);
  }
};

std::string BinDir() { return DFS_BIN_DIR; }

void IgnoreSigpipeOnce() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void AppendLine(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << '\n';
}

std::string Now() {
  auto t = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  return fmt::format("{:02}:{:02}:{:02}.{:03}", tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

// Polls until the child has exited or the deadline passes.
bool PollUntil(const std::function<bool()>& cond, milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  auto pause = milliseconds(1);
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(20));
  }
}

// The ephemeral range starts at 32768 unless configured otherwise.
uint16_t EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int lo = 0, hi = 0;
  if (in >> lo >> hi && lo > 1024) return static_cast<uint16_t>(lo);
  return 32768;
}

// A port on `host` that nothing listens on, below the ephemeral range so that
// no client socket takes it while the NameNode is down between restarts (a
// connect() to a closed port in the ephemeral range can even connect to
// itself). Another process may take it before the NameNode binds: callers retry.
Result<uint16_t> PickPort(const std::string& host) {
  const uint16_t hi = EphemeralLow();
  const uint16_t lo = hi > 12000 ? static_cast<uint16_t>(hi - 12000) : 1025;
  std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(getpid()));
  for (int attempt = 0; attempt < 100; ++attempt) {
    const uint16_t port = static_cast<uint16_t>(lo + rng() % (hi - lo));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::FromErrno("socket", errno);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
      close(fd);
      return Status::InvalidArgument("not an IPv4 address: " + host);
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    if (ok) return port;
  }
  return Status::Unavailable(fmt::format("no free port on {} below {}", host, hi));
}

// "key=value" lines of a port file.
std::map<std::string, std::string> ReadKeyValues(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

void SetKey(KeyValues* kvs, const std::string& key, const std::string& value) {
  for (auto& [k, v] : *kvs) {
    if (k == key) {
      v = value;
      return;
    }
  }
  kvs->emplace_back(key, value);
}

// Daemons and the CLI see only the cluster's own configuration: no
// $DFS_CONF or $DFS_NAMENODE of the person running the tests, and a $DFS_HOME
// inside the cluster's directory.
std::map<std::string, std::optional<std::string>> IsolatedEnv(const std::string& dir) {
  return {{"DFS_HOME", dir + "/home"}, {"DFS_CONF", std::nullopt}, {"DFS_NAMENODE", std::nullopt}};
}

}  // namespace

CATCH_REGISTER_LISTENER(FailureListener)

uint64_t TestSeed() {
  const unsigned given = Catch::rngSeed();
  return given != 0 ? given : std::random_device{}();
}

bool IsKnownConfigKey(const std::string& key) {
  for (const auto& k : AllConfigKeys()) {
    if (k.name == key) return true;
  }
  return false;
}

// ---- ChildProcess -------------------------------------------------------------

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return fmt::format("killed by signal {} ({}){}", WTERMSIG(status), strsignal(WTERMSIG(status)),
                       WCOREDUMP(status) ? ", core dumped" : "");
  }
  return fmt::format("wait status {:#x}", status);
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const Spec& spec) {
  if (spec.argv.empty()) return Status::InvalidArgument("ChildProcess: empty argv");
  IgnoreSigpipeOnce();

  // Everything the child needs is prepared before fork(): after it, in a
  // multithreaded parent, the child may only make async-signal-safe calls.
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::map<std::string, std::string> envmap;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) envmap[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : spec.env) {
    if (v) envmap[k] = *v;
    else envmap.erase(k);
  }
  std::vector<std::string> env_strs;
  for (const auto& [k, v] : envmap) env_strs.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strs) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<int> to_close;  // the parent's copies, closed after fork
  auto cleanup = [&] {
    for (int fd : to_close) close(fd);
  };
  auto open_out = [&](const std::string& path) -> int {
    int fd = open(path.empty() ? "/dev/null" : path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) to_close.push_back(fd);
    return fd;
  };
  const int out_fd = open_out(spec.output);
  if (out_fd < 0) {
    Status s = Status::FromErrno("open " + spec.output, errno);
    cleanup();
    return s;
  }
  int err_fd = out_fd;
  if (!spec.stderr_output.empty()) {
    err_fd = open_out(spec.stderr_output);
    if (err_fd < 0) {
      Status s = Status::FromErrno("open " + spec.stderr_output, errno);
      cleanup();
      return s;
    }
  }
  int in_fd = -1, pipe_w = -1;
  if (spec.stdin_pipe) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
      Status s = Status::FromErrno("pipe", errno);
      cleanup();
      return s;
    }
    in_fd = p[0];
    pipe_w = p[1];
    to_close.push_back(in_fd);
  } else {
    in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_fd >= 0) to_close.push_back(in_fd);
  }
  int ns_fd = -1;
  if (!spec.netns.empty()) {
    const std::string ns_path = "/run/netns/" + spec.netns;
    ns_fd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) {
      Status s = Status::FromErrno("open " + ns_path, errno);
      cleanup();
      if (pipe_w >= 0) close(pipe_w);
      return s;
    }
    to_close.push_back(ns_fd);
  }
  const std::string exec_failed = "ChildProcess: cannot exec " + args[0] + "\n";
  const std::string setns_failed = "ChildProcess: cannot enter network namespace " + spec.netns + "\n";
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    Status s = Status::FromErrno("fork", errno);
    cleanup();
    if (pipe_w >= 0) close(pipe_w);
    return s;
  }
  if (pid == 0) {
    // The child dies with the test binary, whatever kills it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0) {
      (void)!write(err_fd, setns_failed.data(), setns_failed.size());
      _exit(126);
    }
    if (in_fd >= 0) dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    // No descriptor of the test binary (client sockets above all) may live on in
    // a daemon: it would keep connections open after the test closed them.
    syscall(SYS_close_range, 3u, ~0u, 0u);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execve(argv[0], argv.data(), envp.data());
    (void)!write(2, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  cleanup();
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->stdin_fd_ = pipe_w;
  return child;
}

ChildProcess::~ChildProcess() {
  CloseStdin();
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    int st = 0;
    while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = st;
  }
}

Status ChildProcess::WriteStdin(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    if (stdin_fd_ < 0) return Status::InvalidArgument("the child's stdin is closed");
    ssize_t w = write(stdin_fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write to the child's stdin", errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

void ChildProcess::CloseStdin() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  stdin_fd_ = -1;
}

Status ChildProcess::Signal(int sig) {
  if (!Running()) return Status::NotFound(fmt::format("process {} is not running", pid_));
  if (kill(pid_, sig) != 0) return Status::FromErrno(fmt::format("kill -{} {}", sig, pid_), errno);
  return Status::OK();
}

bool ChildProcess::Running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

Result<int> ChildProcess::Wait(milliseconds deadline) {
  if (!PollUntil([&] { return !Running(); }, deadline)) {
    return Status::TimedOut(fmt::format("process {} still runs after {} ms", pid_, deadline.count()));
  }
  return *status_;
}

void ChildProcess::Kill(int sig, milliseconds deadline) {
  if (!Running()) return;
  kill(pid_, sig);
  if (sig != SIGKILL) kill(pid_, SIGCONT);  // a stopped process cannot act on SIGTERM
  if (Wait(deadline).ok()) return;
  kill(pid_, SIGKILL);
  int st = 0;
  while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  status_ = st;
}

// ---- RunCommand -----------------------------------------------------------

std::string CommandResult::ToString() const {
  return fmt::format("exit code {} after {} ms\n--- stdout ---\n{}\n--- stderr ---\n{}", exit_code, elapsed.count(),
                     out, err);
}

namespace {

Result<CommandResult> RunWithEnv(const std::vector<std::string>& argv, milliseconds deadline, const std::string& netns,
                                 const std::map<std::string, std::optional<std::string>>& env) {
  TempDir tmp;
  ChildProcess::Spec spec;
  spec.argv = argv;
  spec.output = tmp.path() + "/out";
  spec.stderr_output = tmp.path() + "/err";
  spec.netns = netns;
  spec.env = env;
  const auto start = std::chrono::steady_clock::now();
  DFS_ASSIGN_OR_RETURN(auto child, ChildProcess::Spawn(spec));
  auto st = child->Wait(deadline);
  CommandResult r;
  r.elapsed = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  if (!st.ok()) child->Kill(SIGKILL);
  r.out = ReadWholeFile(spec.output);
  r.err = ReadWholeFile(spec.stderr_output);
  if (!st.ok()) {
    return Status::TimedOut(fmt::format("`{}` did not finish within {} ms\n--- stdout ---\n{}\n--- stderr ---\n{}",
                                        fmt::join(argv, " "), deadline.count(), r.out, r.err));
  }
  r.exit_code = WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  if (WIFSIGNALED(*st)) r.err += "\n[" + DescribeWaitStatus(*st) + "]";
  return r;
}

}  // namespace

Result<CommandResult> RunCommand(const std::vector<std::string>& argv, milliseconds deadline,
                                 const std::string& netns) {
  return RunWithEnv(argv, deadline, netns, {});
}

std::string TailFile(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(std::move(line));
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += l + '\n';
  return out;
}

// ---- ProcessCluster -----------------------------------------------------------

KeyValues ProcessCluster::DefaultConf() {
  const char* level = std::getenv("DFS_TEST_LOG");
  return {
      {"dfs.blocksize", "1m"},
      {"dfs.heartbeat.interval", "1s"},
      {"dfs.namenode.datanode.dead.interval", "4s"},
      {"dfs.namenode.replication.interval", "500ms"},
      {"dfs.client.socket-timeout", "15s"},
      {"dfs.client.rpc-timeout", "15s"},
      {"dfs.datanode.sync-on-close", "false"},
      {"dfs.namenode.handler.count", "8"},
      {"dfs.log.level", level && *level ? level : "info"},
  };
}

Result<std::unique_ptr<ProcessCluster>> ProcessCluster::Start(const Options& options) {
  std::unique_ptr<ProcessCluster> pc(new ProcessCluster());
  pc->opts_ = options;
  pc->dn_opts_ = options.datanode;
  pc->conf_ = DefaultConf();
  SetKey(&pc->conf_, "dfs.blocksize", std::to_string(options.block_size));
  for (const auto& [k, v] : options.conf) SetKey(&pc->conf_, k, v);
  // Unknown keys would stop every daemon at start-up; say so here, once.
  KeyValues all = pc->conf_;
  all.insert(all.end(), options.namenode_conf.begin(), options.namenode_conf.end());
  for (const auto& [i, o] : options.datanode) all.insert(all.end(), o.conf.begin(), o.conf.end());
  for (const auto& [k, v] : all) {
    if (!IsKnownConfigKey(k)) {
      return Status::InvalidArgument(fmt::format(
          "configuration key '{}' does not exist in this build (not in `dfs-namenode --dump-default-config`)", k));
    }
    Config probe;
    DFS_RETURN_IF_ERROR(probe.Set(k, v));
  }
  std::error_code ec;
  fs::create_directories(pc->dir() + "/logs", ec);
  fs::create_directories(pc->dir() + "/home", ec);
  // The shells the tests run read this (empty) file, not the machine's
  // /etc/dfs/dfs.conf of an installed lab.
  std::ofstream(pc->dir() + "/home/dfs.conf").flush();
  pc->conf_file_ = pc->dir() + "/dfs.conf";

  pc->nn_.name = "namenode";
  pc->nn_.dir = pc->dir() + "/nn";
  pc->nn_.log = pc->dir() + "/logs/namenode.log";
  pc->nn_.port_file = pc->dir() + "/namenode.ports";
  Status started;
  for (int attempt = 0; attempt < 5; ++attempt) {
    DFS_ASSIGN_OR_RETURN(pc->nn_port_, PickPort(options.host));
    DFS_RETURN_IF_ERROR(pc->WriteConf());
    started = pc->StartNameNode();
    if (started.ok()) break;
    AppendLine(pc->nn_.log, fmt::format("==== [test harness] start on port {} failed; trying another port",
                                        pc->nn_port_));
  }
  DFS_RETURN_IF_ERROR(started);
  for (int i = 0; i < options.num_datanodes; ++i) {
    DataNodeOptions o;
    if (auto it = pc->dn_opts_.find(i); it != pc->dn_opts_.end()) o = it->second;
    DFS_ASSIGN_OR_RETURN(int idx, pc->AddDataNode(o));
    (void)idx;
  }
  if (options.wait_for_datanodes) DFS_RETURN_IF_ERROR(pc->WaitForDatanodes(options.num_datanodes));
  return pc;
}

ProcessCluster::~ProcessCluster() {
  const bool failed = g_test_failed || std::uncaught_exceptions() > 0;
  if (failed) {
    std::fprintf(stderr, "\n==== The test failed; the daemons' logs (in %s) end with:\n%s\n", dir().c_str(),
                 DumpLogs().c_str());
  }
  for (auto& d : dns_) d.proc.reset();
  nn_.proc.reset();
  const char* keep = std::getenv("DFS_TEST_KEEP");
  if (keep && *keep && std::string(keep) != "0") {
    const std::string kept = dir() + ".kept";
    std::error_code ec;
    fs::copy(dir(), kept, fs::copy_options::recursive, ec);
    std::fprintf(stderr, "==== DFS_TEST_KEEP: cluster directory copied to %s\n", kept.c_str());
  }
}

Status ProcessCluster::WriteConf() {
  conf_file_ = dir() + "/dfs.conf";
  std::ofstream out(conf_file_ + ".tmp");
  out << "# Written by the test's ProcessCluster: shared by every daemon, client and dfs command.\n";
  out << "fs.defaultFS = " << namenode_address() << '\n';
  for (const auto& [k, v] : conf_) out << k << " = " << v << '\n';
  out.close();
  if (!out) return Status::IOError("cannot write " + conf_file_);
  if (std::rename((conf_file_ + ".tmp").c_str(), conf_file_.c_str()) != 0) {
    return Status::FromErrno("rename " + conf_file_, errno);
  }
  return Status::OK();
}

Status ProcessCluster::StartDaemon(Daemon& d, const std::string& binary, const std::string& port_key) {
  if (d.proc && d.proc->Running()) return Status::AlreadyExists(d.name + " is already running");
  std::error_code ec;
  fs::remove(d.port_file, ec);
  ChildProcess::Spec spec;
  spec.argv = {BinDir() + "/" + binary, "--conf", conf_file_, "--port-file", d.port_file};
  spec.argv.insert(spec.argv.end(), d.args.begin(), d.args.end());
  spec.output = d.log;
  spec.netns = d.netns;
  spec.env = IsolatedEnv(dir());
  AppendLine(d.log, fmt::format("==== [test harness {}] starting: {}", Now(), fmt::join(spec.argv, " ")));
  DFS_ASSIGN_OR_RETURN(d.proc, ChildProcess::Spawn(spec));
  d.should_run = true;
  d.port = 0;
  const bool up = PollUntil(
      [&] {
        if (!d.proc->Running()) return true;
        auto kv = ReadKeyValues(d.port_file);
        auto it = kv.find(port_key);
        if (it == kv.end()) return false;
        d.port = static_cast<uint16_t>(std::stoi(it->second));
        return true;
      },
      std::chrono::seconds(30));
  if (!d.proc->Running()) {
    d.should_run = false;
    return Status::Aborted(fmt::format("{} {} at start-up; its log ({}) ends with:\n{}", d.name,
                                       DescribeWaitStatus(*d.proc->wait_status()), d.log, TailFile(d.log, 30)));
  }
  if (!up) {
    return Status::TimedOut(fmt::format("{} wrote no port file within 30 s; its log ({}) ends with:\n{}", d.name,
                                        d.log, TailFile(d.log, 30)));
  }
  AppendLine(d.log, fmt::format("==== [test harness {}] pid {} serving on port {}", Now(), d.proc->pid(), d.port));
  return Status::OK();
}

Status ProcessCluster::SignalDaemon(Daemon& d, int sig) {
  if (!d.proc || !d.proc->Running()) {
    return Status::NotFound(fmt::format("{} is not running", d.name));
  }
  AppendLine(d.log, fmt::format("==== [test harness {}] sending signal {} ({}) to pid {}", Now(), sig, strsignal(sig),
                                d.proc->pid()));
  if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGQUIT || sig == SIGABRT) {
    d.should_run = false;
    d.proc->Kill(sig);
    AppendLine(d.log, fmt::format("==== [test harness {}] pid {} {}", Now(), d.proc->pid(),
                                  DescribeWaitStatus(d.proc->wait_status().value_or(0))));
    return Status::OK();
  }
  return d.proc->Signal(sig);
}

Status ProcessCluster::StartNameNode() {
  nn_.args = {"-D", "dfs.namenode.name.dir=" + nn_.dir, "-D", "dfs.namenode.rpc-address=" + namenode_address(),
              "-D", "dfs.namenode.wal.spare-size=2m"};
  for (const auto& [k, v] : opts_.namenode_conf) {
    nn_.args.push_back("-D");
    nn_.args.push_back(k + "=" + v);
  }
  return StartDaemon(nn_, "dfs-namenode", "rpc");
}

Status ProcessCluster::KillNameNode(int sig) { return SignalDaemon(nn_, sig); }

Status ProcessCluster::RestartNameNode(int sig) {
  Status s = KillNameNode(sig);
  if (!s.ok() && !s.IsNotFound()) return s;
  return StartNameNode();
}

pid_t ProcessCluster::namenode_pid() const { return nn_.proc && !nn_.proc->wait_status() ? nn_.proc->pid() : -1; }

std::string ProcessCluster::namenode_address() const { return fmt::format("{}:{}", opts_.host, nn_port_); }

std::string ProcessCluster::namenode_log() const { return nn_.log; }

std::vector<std::string> ProcessCluster::DataNodeArgs(int i) const {
  DataNodeOptions o;
  if (auto it = dn_opts_.find(i); it != dn_opts_.end()) o = it->second;
  const std::string host = o.host.empty() ? opts_.host : o.host;
  std::vector<std::string> args = {"-D", "dfs.datanode.address=" + host + ":0", "-D",
                                   "dfs.datanode.data.dir=" + datanode_dir(i)};
  for (const auto& [k, v] : o.conf) {
    args.push_back("-D");
    args.push_back(k + "=" + v);
  }
  return args;
}

Result<int> ProcessCluster::AddDataNode(const DataNodeOptions& options) {
  const int i = num_datanodes();
  for (const auto& [k, v] : options.conf) {
    if (!IsKnownConfigKey(k)) {
      return Status::InvalidArgument(fmt::format("configuration key '{}' does not exist in this build", k));
    }
  }
  dn_opts_[i] = options;
  Daemon d;
  d.name = fmt::format("datanode{}", i);
  d.dir = datanode_dir(i);
  d.log = fmt::format("{}/logs/datanode{}.log", dir(), i);
  d.port_file = fmt::format("{}/datanode{}.ports", dir(), i);
  d.netns = options.netns;
  d.host = options.host.empty() ? opts_.host : options.host;
  dns_.push_back(std::move(d));
  DFS_RETURN_IF_ERROR(StartDataNode(i));
  return i;
}

Status ProcessCluster::StartDataNode(int i) {
  if (i < 0 || i >= num_datanodes()) return Status::InvalidArgument(fmt::format("no DataNode {}", i));
  Daemon& d = dns_[static_cast<size_t>(i)];
  d.args = DataNodeArgs(i);
  return StartDaemon(d, "dfs-datanode", "xfer");
}

Status ProcessCluster::KillDataNode(int i, int sig) {
  if (i < 0 || i >= num_datanodes()) return Status::InvalidArgument(fmt::format("no DataNode {}", i));
  return SignalDaemon(dns_[static_cast<size_t>(i)], sig);
}

Status ProcessCluster::RestartDataNode(int i, int sig) {
  Status s = KillDataNode(i, sig);
  if (!s.ok() && !s.IsNotFound()) return s;
  return StartDataNode(i);
}

pid_t ProcessCluster::pid(int i) const {
  const Daemon& d = dns_.at(static_cast<size_t>(i));
  return d.proc && !d.proc->wait_status() ? d.proc->pid() : -1;
}

uint16_t ProcessCluster::datanode_port(int i) const {
  const Daemon& d = dns_.at(static_cast<size_t>(i));
  return d.should_run ? d.port : 0;
}

std::string ProcessCluster::datanode_dir(int i) const { return fmt::format("{}/dn{}", dir(), i); }

std::string ProcessCluster::datanode_log(int i) const { return dns_.at(static_cast<size_t>(i)).log; }

int ProcessCluster::DataNodeByPort(uint16_t port) const {
  for (int i = 0; i < num_datanodes(); ++i) {
    if (dns_[static_cast<size_t>(i)].should_run && dns_[static_cast<size_t>(i)].port == port) return i;
  }
  return -1;
}

std::vector<int> ProcessCluster::Holders(const client::BlockLocation& block) const {
  std::vector<int> out;
  for (const auto& r : block.replicas) {
    int found = -1;
    for (int i = 0; i < num_datanodes(); ++i) {
      const Daemon& d = dns_[static_cast<size_t>(i)];
      if (d.should_run && d.port == r.xfer_port() && d.host == r.ip()) found = i;
    }
    out.push_back(found);
  }
  return out;
}

Status ProcessCluster::WaitForDatanodes(int n, milliseconds deadline) {
  auto fs = NewClient();
  std::string last = "no answer from the NameNode";
  bool ok = PollUntil(
      [&] {
        auto stats = fs->GetStats();
        if (!stats.ok()) {
          last = stats.status().ToString();
          return false;
        }
        auto sm = fs->SafeMode(proto::SafeModeRequest::GET);
        if (!sm.ok()) {
          last = sm.status().ToString();
          return false;
        }
        last = fmt::format("{} live DataNode(s); {}", stats->live_datanodes(), sm->status());
        return static_cast<int>(stats->live_datanodes()) >= n && !sm->on();
      },
      deadline);
  if (!ok) {
    return Status::TimedOut(fmt::format("waited {} ms for {} live DataNodes and no safe mode: {}\n{}",
                                        deadline.count(), n, last, DumpLogs(15)));
  }
  return Status::OK();
}

Status ProcessCluster::WaitForReplicas(client::FileSystem& fs, const std::string& path, int n,
                                       milliseconds deadline) {
  std::string last;
  const bool ok = PollUntil(
      [&] {
        auto blocks = fs.GetBlockLocations(path);
        if (!blocks.ok()) {
          last = blocks.status().ToString();
          return false;
        }
        last.clear();
        bool all = true;
        for (const auto& b : *blocks) {
          const size_t on_disk = FindReplicas(b.block.value()).size();
          last += fmt::format("blk_{}: {} listed, {} on disk; ", b.block.value(), b.replicas.size(), on_disk);
          all = all && b.replicas.size() == static_cast<size_t>(n) && on_disk == static_cast<size_t>(n);
        }
        return all;
      },
      deadline);
  if (!ok) return Status::TimedOut(fmt::format("{} never had {} replicas of every block: {}", path, n, last));
  return Status::OK();
}

Status ProcessCluster::CheckDaemonsAlive() {
  std::string dead;
  auto check = [&](Daemon& d) {
    if (d.should_run && d.proc && !d.proc->Running()) {
      dead += fmt::format("{} (pid {}) {} by itself; its log ends with:\n{}\n", d.name, d.proc->pid(),
                          DescribeWaitStatus(*d.proc->wait_status()), TailFile(d.log, 30));
    }
  };
  check(nn_);
  for (auto& d : dns_) check(d);
  return dead.empty() ? Status::OK() : Status::Aborted(dead);
}

Config ProcessCluster::ClientConfig() const {
  Config c;
  (void)c.Set("fs.defaultFS", namenode_address());
  for (const auto& [k, v] : conf_) (void)c.Set(k, v);
  return c;
}

std::unique_ptr<client::FileSystem> ProcessCluster::NewClient(const KeyValues& conf) {
  Config c = ClientConfig();
  for (const auto& [k, v] : conf) {
    Status s = c.Set(k, v);
    if (!s.ok()) {
      std::fprintf(stderr, "ProcessCluster::NewClient: %s\n", s.ToString().c_str());
      return nullptr;
    }
  }
  auto fs = client::FileSystem::Connect(c, namenode_address());
  if (!fs.ok()) {
    std::fprintf(stderr, "ProcessCluster::NewClient: %s\n", fs.status().ToString().c_str());
    return nullptr;
  }
  return std::move(fs).value();
}

std::vector<std::string> ProcessCluster::DfsCommand() const {
  return {BinDir() + "/dfs", "--conf", conf_file_, "-fs", namenode_address()};
}

Result<CommandResult> ProcessCluster::RunDfs(const std::vector<std::string>& args, milliseconds deadline) {
  std::vector<std::string> argv = DfsCommand();
  argv.insert(argv.end(), args.begin(), args.end());
  return RunWithEnv(argv, deadline, "",
                    IsolatedEnv(dir()));
}

Result<std::unique_ptr<ChildProcess>> ProcessCluster::SpawnDfs(const std::vector<std::string>& args, bool stdin_pipe,
                                                               const std::string& output) {
  ChildProcess::Spec spec;
  spec.argv = DfsCommand();
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.output = output;
  spec.stdin_pipe = stdin_pipe;
  spec.env = IsolatedEnv(dir());
  return ChildProcess::Spawn(spec);
}

std::vector<ProcessCluster::ReplicaFile> ProcessCluster::FindReplicas(uint64_t block_id) const {
  std::vector<ReplicaFile> out;
  const std::string prefix = fmt::format("blk_{}_", block_id);
  for (int i = 0; i < num_datanodes(); ++i) {
    std::error_code ec;
    fs::recursive_directory_iterator it(datanode_dir(i) + "/current", ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(prefix, 0) == 0 && name.find('.') == std::string::npos) {
        out.push_back({i, it->path().string()});
      }
    }
  }
  return out;
}

std::vector<std::string> ProcessCluster::TmpFiles(int i) const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(datanode_dir(i) + "/tmp", ec), end; !ec && it != end; it.increment(ec)) {
    out.push_back(it->path().string());
  }
  return out;
}

std::string ProcessCluster::DumpLogs(size_t lines) const {
  std::string out;
  auto one = [&](const Daemon& d) {
    out += fmt::format("---- {} ({}) ----\n{}", d.name, d.log, TailFile(d.log, lines));
  };
  one(nn_);
  for (const auto& d : dns_) one(d);
  return out;
}

// ---- NetnsPair ----------------------------------------------------------------

namespace {

Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const char* dir : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(dir, X_OK) == 0) {
      argv[0] = dir;
      break;
    }
  }
  if (argv[0] == "ip") return Status::NotFound("no `ip` binary (iproute2) in /usr/sbin, /sbin, /usr/bin or /bin");
  auto r = RunCommand(argv, std::chrono::seconds(20));
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::IOError(fmt::format("`{}` failed ({}): {}", fmt::join(argv, " "), r->exit_code, r->err));
  }
  return Status::OK();
}

std::atomic<int> g_netns_serial{0};

}  // namespace

Result<std::unique_ptr<NetnsPair>> NetnsPair::Create() {
  if (geteuid() != 0) return Status::Unavailable("network namespaces need root (this test runs as a normal user)");
  // Remove the namespaces of test binaries that died without cleaning up.
  {
    std::error_code ec;
    for (fs::directory_iterator it("/run/netns", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      int pid = 0, serial = 0;
      char side = 0;
      if (std::sscanf(name.c_str(), "dfst%d-%d%c", &pid, &serial, &side) == 3 && pid > 0 &&
          kill(pid, 0) != 0 && errno == ESRCH) {
        (void)Ip({"netns", "del", name});
      }
    }
  }
  std::unique_ptr<NetnsPair> p(new NetnsPair());
  const int serial = g_netns_serial++;
  p->a_ = fmt::format("dfst{}-{}a", getpid(), serial);
  p->b_ = fmt::format("dfst{}-{}b", getpid(), serial);
  Status s = Ip({"netns", "add", p->a_});
  if (!s.ok()) {
    p->a_.clear();
    p->b_.clear();
    return Status::Unavailable("cannot create a network namespace (needs CAP_SYS_ADMIN): " + s.message());
  }
  s = Ip({"netns", "add", p->b_});
  if (!s.ok()) {
    p->b_.clear();
    return Status::Unavailable("cannot create a second network namespace: " + s.message());
  }
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"-n", p->a_, "link", "set", "lo", "up"},
           {"-n", p->b_, "link", "set", "lo", "up"},
           {"-n", p->a_, "link", "add", "dfsa", "type", "veth", "peer", "name", "dfsb", "netns", p->b_},
           {"-n", p->a_, "addr", "add", std::string(kAddrA) + "/24", "dev", "dfsa"},
           {"-n", p->b_, "addr", "add", std::string(kAddrB) + "/24", "dev", "dfsb"},
           {"-n", p->a_, "link", "set", "dfsa", "up"},
           {"-n", p->b_, "link", "set", "dfsb", "up"},
       }) {
    s = Ip(cmd);
    if (!s.ok()) return Status::Unavailable("cannot set up the veth pair between the namespaces: " + s.message());
  }
  return p;
}

NetnsPair::~NetnsPair() {
  if (!a_.empty()) (void)Ip({"netns", "del", a_});
  if (!b_.empty()) (void)Ip({"netns", "del", b_});
}

Status NetnsPair::SetLinkUp(bool up) { return Ip({"-n", b_, "link", "set", "dfsb", up ? "up" : "down"}); }

NetnsPair::Entered::~Entered() {
  if (saved_ >= 0) {
    if (setns(saved_, CLONE_NEWNET) != 0) {
      std::perror("setns back to the original network namespace");
      std::abort();  // the rest of the test binary would run in the wrong namespace
    }
    close(saved_);
  }
}

Result<std::unique_ptr<NetnsPair::Entered>> NetnsPair::EnterA() {
  int saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (saved < 0) return Status::FromErrno("open /proc/thread-self/ns/net", errno);
  const std::string path = "/run/netns/" + a_;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Status s = Status::FromErrno("open " + path, errno);
    close(saved);
    return s;
  }
  int r = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (r != 0) {
    close(saved);
    return Status::FromErrno("setns " + path, err);
  }
  return std::make_unique<Entered>(saved);
}

}  // namespace dfs::test

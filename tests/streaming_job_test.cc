// End-to-end streaming MapReduce jobs on a MiniCluster, submitted with `dfs
// streaming` as a student would, with real Python mappers and reducers; the
// answers are computed independently here.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "client/cli/shell.h"
#include "tests/mini_cluster.h"

using namespace dfs;
using namespace dfs::test;

namespace {

struct ShellRun {
  int rc;
  std::string out, err;
};

ShellRun Dfs(MiniCluster& mc, std::vector<std::string> args) {
  std::ostringstream out, err;
  std::istringstream in;
  cli::ShellEnv env;
  env.connect = [&](const Config&, const std::string&) -> Result<std::shared_ptr<client::FileSystem>> {
    return std::shared_ptr<client::FileSystem>(mc.NewClient());
  };
  env.out = &out;
  env.err = &err;
  env.in = &in;
  int rc = cli::RunShell(std::move(args), env);
  return {rc, out.str(), err.str()};
}

std::unique_ptr<MiniCluster> StartCluster(std::vector<std::pair<std::string, std::string>> extra = {}) {
  MiniCluster::Options o;
  o.conf = {{"dfs.datanode.task.slots", "2"}, {"dfs.heartbeat.interval", "1s"}};
  for (auto& kv : extra) o.conf.push_back(kv);
  auto mc = MiniCluster::Start(o);
  REQUIRE(mc.ok());
  REQUIRE((*mc)->WaitForDatanodes(3).ok());
  return std::move(*mc);
}

std::string WriteLocal(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

const char* const kMapper =
    "#!/usr/bin/env python3\n"
    "import sys\n"
    "for line in sys.stdin:\n"
    "    for w in line.split():\n"
    "        print(w + '\\t1')\n";

const char* const kReducer =
    "#!/usr/bin/env python3\n"
    "import sys\n"
    "cur, n = None, 0\n"
    "for line in sys.stdin:\n"
    "    k, v = line.rstrip('\\n').split('\\t', 1)\n"
    "    if k != cur:\n"
    "        if cur is not None:\n"
    "            print(cur + '\\t' + str(n))\n"
    "        cur, n = k, 0\n"
    "    n += int(v)\n"
    "if cur is not None:\n"
    "    print(cur + '\\t' + str(n))\n";

// A few MiB of words, so the input spans several 1 MiB blocks.
std::string WordText(size_t lines, uint64_t seed) {
  std::string s;
  uint64_t x = seed;
  for (size_t i = 0; i < lines; ++i) {
    const int words = 1 + static_cast<int>(i % 7);
    for (int w = 0; w < words; ++w) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      s += "w" + std::to_string((x >> 33) % 500);
      s += w + 1 < words ? ' ' : '\n';
    }
  }
  return s;
}

std::map<std::string, long> CountWords(const std::string& text) {
  std::map<std::string, long> m;
  std::istringstream is(text);
  std::string w;
  while (is >> w) m[w]++;
  return m;
}

// Every part-* file of `dir`, concatenated in name order.
std::string ReadParts(client::FileSystem& fs, const std::string& dir, int* parts = nullptr) {
  auto list = fs.ListAll(dir);
  REQUIRE(list.ok());
  std::string all;
  int n = 0;
  for (const auto& f : *list) {
    if (f.name.rfind("part-", 0) != 0) continue;
    auto r = ReadFile(fs, f.path);
    REQUIRE(r.ok());
    all += *r;
    ++n;
  }
  if (parts) *parts = n;
  return all;
}

std::map<std::string, long> ParseCounts(const std::string& text) {
  std::map<std::string, long> m;
  std::istringstream is(text);
  std::string line;
  while (std::getline(is, line)) {
    auto tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    REQUIRE(m.count(line.substr(0, tab)) == 0);  // each key from exactly one reducer
    m[line.substr(0, tab)] = std::stol(line.substr(tab + 1));
  }
  return m;
}

size_t Occurrences(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("streaming word count matches an independent count with 1 and 3 reducers and a combiner",
          "[streaming][slow]") {
  auto mc = StartCluster();
  TempDir local;
  const std::string mapper = WriteLocal(local.path(), "mapper.py", kMapper);
  const std::string reducer = WriteLocal(local.path(), "reducer.py", kReducer);
  auto fs = mc->NewClient();
  const std::string text = WordText(120000, 7);  // ~2.3 MiB: three blocks
  REQUIRE(WriteFile(*fs, "/in/words.txt", text).ok());
  const auto want = CountWords(text);

  auto r1 = Dfs(*mc, {"streaming", "-input", "/in", "-output", "/wc1", "-mapper", "mapper.py", "-reducer",
                      "reducer.py", "-file", mapper, "-file", reducer});
  INFO(r1.err);
  REQUIRE(r1.rc == 0);
  int parts = 0;
  CHECK(ParseCounts(ReadParts(*fs, "/wc1", &parts)) == want);
  CHECK(parts == 1);
  CHECK(fs->GetFileInfo("/wc1/_SUCCESS").ok());
  CHECK(!fs->GetFileInfo("/wc1/_temporary").ok());
  CHECK(r1.err.find("Map input records=120000") != std::string::npos);
  CHECK(r1.err.find("Reduce output records=" + std::to_string(want.size())) != std::string::npos);

  auto r3 = Dfs(*mc, {"streaming", "-D", "mapreduce.job.reduces=3", "-input", "/in/words.txt", "-output", "/wc3",
                      "-mapper", "mapper.py", "-reducer", "reducer.py", "-combiner", "reducer.py", "-file", mapper,
                      "-file", reducer});
  INFO(r3.err);
  REQUIRE(r3.rc == 0);
  CHECK(ParseCounts(ReadParts(*fs, "/wc3", &parts)) == want);
  CHECK(parts == 3);
  CHECK(r3.err.find("Combine input records=") != std::string::npos);

  // The same output again is refused, and -overwrite replaces it.
  auto again = Dfs(*mc, {"streaming", "-input", "/in", "-output", "/wc1", "-mapper", "cat", "-reducer", "NONE"});
  CHECK(again.rc != 0);
  CHECK(again.err.find("-overwrite") != std::string::npos);
  auto over = Dfs(*mc, {"streaming", "-input", "/in", "-output", "/wc1", "-mapper", "cat", "-reducer", "NONE",
                        "-overwrite"});
  CHECK(over.rc == 0);
}

TEST_CASE("a map-only job sees every line once even when lines straddle block boundaries", "[streaming]") {
  auto mc = StartCluster();
  auto fs = mc->NewClient();
  // Lines of varied lengths over three 1 MiB blocks, some crossing each boundary,
  // and no newline at the very end.
  std::string text;
  for (int i = 0; text.size() < (5u << 19); ++i) text += std::string(static_cast<size_t>(1 + (i * 7919) % 3001), 'a' + i % 26) + "\n";
  text += "last line without newline";
  REQUIRE(WriteFile(*fs, "/lines.txt", text).ok());
  auto r = Dfs(*mc, {"streaming", "-input", "/lines.txt", "-output", "/copy", "-mapper", "cat", "-numReduceTasks", "0"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  int parts = 0;
  CHECK(ReadParts(*fs, "/copy", &parts) == text + "\n");
  CHECK(parts == 3);  // one per split, in split order
}

TEST_CASE("a join with the key-field partitioner and counters and status lines", "[streaming]") {
  auto mc = StartCluster();
  TempDir local;
  auto fs = mc->NewClient();
  // users: id<TAB>name ; orders: id<TAB>item. The mapper tags each record so
  // that a user's name sorts before their orders; the partitioner keeps one id
  // on one reducer.
  REQUIRE(WriteFile(*fs, "/join/users.txt", "1\tann\n2\tbob\n3\tcid\n").ok());
  REQUIRE(WriteFile(*fs, "/join/orders.txt", "2\tpen\n1\tbook\n2\tink\n3\tcup\n1\tmap\n").ok());
  const std::string mapper = WriteLocal(local.path(), "tag.py",
                                        "#!/usr/bin/env python3\n"
                                        "import os, sys\n"
                                        "tag = 'A' if 'users' in os.environ['mapreduce_map_input_file'] else 'B'\n"
                                        "for line in sys.stdin:\n"
                                        "    k, v = line.rstrip('\\n').split('\\t')\n"
                                        "    sys.stderr.write('reporter:counter:Join,Records,1\\n')\n"
                                        "    print(k + '\\t' + tag + '\\t' + v)\n"
                                        "sys.stderr.write('reporter:status:tagged\\n')\n");
  const std::string reducer = WriteLocal(local.path(), "join.py",
                                         "#!/usr/bin/env python3\n"
                                         "import sys\n"
                                         "name = {}\n"
                                         "for line in sys.stdin:\n"
                                         "    k, tag, v = line.rstrip('\\n').split('\\t')\n"
                                         "    if tag == 'A':\n"
                                         "        name[k] = v\n"
                                         "    else:\n"
                                         "        print(name[k] + '\\t' + v)\n");
  auto r = Dfs(*mc, {"streaming", "-D", "stream.num.map.output.key.fields=2", "-D",
                     "mapreduce.partition.keypartitioner.options=-k1,1", "-D", "mapreduce.job.reduces=2", "-partitioner",
                     "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner", "-input", "/join", "-output", "/joined",
                     "-mapper", "tag.py", "-reducer", "join.py", "-file", mapper, "-file", reducer});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  std::multiset<std::string> got;
  std::istringstream is(ReadParts(*fs, "/joined"));
  for (std::string line; std::getline(is, line);) got.insert(line);
  CHECK(got == std::multiset<std::string>{"ann\tbook", "ann\tmap", "bob\tpen", "bob\tink", "cid\tcup"});
  CHECK(r.err.find("Records=8") != std::string::npos);
}

TEST_CASE("a mapper that raises fails the job with its traceback shown once", "[streaming]") {
  auto mc = StartCluster();
  TempDir local;
  auto fs = mc->NewClient();
  REQUIRE(WriteFile(*fs, "/in.txt", "one\ntwo\n").ok());
  const std::string bad = WriteLocal(local.path(), "bad.py",
                                     "#!/usr/bin/env python3\nimport sys\nfor line in sys.stdin:\n    int(line)\n");
  auto r = Dfs(*mc, {"streaming", "-input", "/in.txt", "-output", "/out", "-mapper", "bad.py", "-file", bad,
                     "-reducer", "NONE"});
  INFO(r.err);
  CHECK(r.rc == 1);
  CHECK(r.err.find("map task 0 (input /in.txt bytes 0-7) failed 4 times") != std::string::npos);
  CHECK(r.err.find("exit code 1") != std::string::npos);
  CHECK(Occurrences(r.err, "Traceback (most recent call last)") == 1);
  CHECK(r.err.find("ValueError: invalid literal for int()") != std::string::npos);
  // `dfs job -logs` has every attempt's stderr.
  const auto id_at = r.err.find("Submitted job_");
  REQUIRE(id_at != std::string::npos);
  const std::string id = r.err.substr(id_at + 10, r.err.find(' ', id_at + 10) - id_at - 10);
  auto logs = Dfs(*mc, {"job", "-logs", id});
  CHECK(logs.rc == 0);
  CHECK(Occurrences(logs.out, "ValueError") == 4);
  auto list = Dfs(*mc, {"job", "-list", "all"});
  CHECK(list.out.find(id) != std::string::npos);
  CHECK(list.out.find("FAILED") != std::string::npos);
}

TEST_CASE("pre-flight fixes a CRLF mapper and refuses what cannot run", "[streaming]") {
  auto mc = StartCluster({{"mapreduce.task.timeout", "1500ms"}});
  TempDir local;
  auto fs = mc->NewClient();
  REQUIRE(WriteFile(*fs, "/in.txt", "hello world\n").ok());
  const std::string crlf = WriteLocal(local.path(), "upper.py",
                                      "#!/usr/bin/env python3\r\nimport sys\r\nfor l in sys.stdin:\r\n"
                                      "    print(l.strip().upper())\r\n");
  auto ok = Dfs(*mc, {"streaming", "-input", "/in.txt", "-output", "/up", "-mapper", "upper.py", "-file", crlf,
                      "-reducer", "NONE"});
  INFO(ok.err);
  REQUIRE(ok.rc == 0);
  CHECK(ok.err.find("Windows line endings") != std::string::npos);
  CHECK(ReadParts(*fs, "/up") == "HELLO WORLD\n");

  auto missing = Dfs(*mc, {"streaming", "-input", "/in.txt", "-output", "/x", "-mapper", "nosuch.py"});
  CHECK(missing.rc != 0);
  CHECK(missing.err.find("nosuch.py") != std::string::npos);

  auto no_input = Dfs(*mc, {"streaming", "-input", "/nothing*", "-output", "/x", "-mapper", "cat"});
  CHECK(no_input.rc != 0);
  CHECK(no_input.err.find("matches nothing") != std::string::npos);

  // A mapper that loops forever without output is killed after the task timeout.
  const std::string loop = WriteLocal(local.path(), "loop.py", "#!/usr/bin/env python3\nwhile True:\n    pass\n");
  auto hang = Dfs(*mc, {"streaming", "-D", "mapreduce.map.maxattempts=2", "-input", "/in.txt", "-output", "/h",
                        "-mapper", "loop.py", "-file", loop, "-reducer", "NONE"});
  INFO(hang.err);
  CHECK(hang.rc == 1);
  CHECK(hang.err.find("failed 2 times") != std::string::npos);
  CHECK(hang.err.find("mapreduce.task.timeout") != std::string::npos);
}

TEST_CASE("a DataNode stopped mid-job has its tasks and map outputs redone and the answer is exact",
          "[streaming][slow]") {
  auto mc = StartCluster({{"dfs.namenode.datanode.dead.interval", "3s"}});
  TempDir local;
  auto fs = mc->NewClient();
  const std::string text = WordText(200000, 11);  // ~3.8 MiB: four maps
  REQUIRE(WriteFile(*fs, "/in/words.txt", text).ok());
  // A slow mapper, so the job is still running when a node goes.
  const std::string mapper = WriteLocal(local.path(), "slow.py",
                                        "#!/usr/bin/env python3\n"
                                        "import sys, time\n"
                                        "for i, line in enumerate(sys.stdin):\n"
                                        "    if i % 20000 == 0:\n"
                                        "        time.sleep(0.3)\n"
                                        "    for w in line.split():\n"
                                        "        print(w + '\\t1')\n");
  const std::string reducer = WriteLocal(local.path(), "reducer.py", kReducer);
  ShellRun r;
  std::thread job([&] {
    r = Dfs(*mc, {"streaming", "-D", "mapreduce.job.reduces=2", "-input", "/in", "-output", "/wc", "-mapper",
                  "slow.py", "-reducer", "reducer.py", "-file", mapper, "-file", reducer});
  });
  // Stop a DataNode once some map has finished somewhere (its output must be redone).
  REQUIRE(WaitFor([&] {
    for (int i = 0; i < mc->num_datanodes(); ++i) {
      std::error_code ec;
      for (auto& e : std::filesystem::recursive_directory_iterator(mc->datanode_dir(i), ec)) {
        if (e.path().string().ends_with(".out.index")) return true;
      }
    }
    return false;
  }, std::chrono::seconds(60)));
  mc->StopDataNode(0);
  job.join();
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(ParseCounts(ReadParts(*fs, "/wc")) == CountWords(text));
}

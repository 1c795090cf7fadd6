// `dfs streaming`'s command line (streaming_args.h) and the client's pre-flight
// (streaming_preflight.h): the command lines students type, every error they
// can get, and each fix the pre-flight makes to their scripts.
#include "client/cli/streaming_args.h"

#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "client/cli/streaming_preflight.h"

namespace dfs::cli {
namespace {

using Argv = std::vector<std::string>;

StreamingArgs Parse(const Argv& args) {
  auto r = ParseStreamingArgs(args);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

// The message of the error `args` must produce.
std::string ParseError(const Argv& args) {
  auto r = ParseStreamingArgs(args);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::string> ToVector(const google::protobuf::RepeatedPtrField<std::string>& f) {
  return {f.begin(), f.end()};
}

const Argv kWordCount = {"-input",   "books",      "-output", "counts",    "-mapper", "mapper.py",
                         "-reducer", "reducer.py", "-file",   "mapper.py", "-file",   "reducer.py"};

Argv With(Argv base, const Argv& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

// ---- parsing ----

TEST_CASE("streaming parses the classic word count", "[streaming]") {
  StreamingArgs a = Parse(kWordCount);
  CHECK(a.inputs == Argv{"books"});
  CHECK(a.output == "counts");
  CHECK(a.mapper.text == "mapper.py");
  CHECK(a.mapper.argv == Argv{"mapper.py"});
  CHECK(a.reducer.argv == Argv{"reducer.py"});
  CHECK_FALSE(a.combiner.given());
  REQUIRE(a.files.size() == 2);
  CHECK(a.files[0].local_path == "mapper.py");
  CHECK(a.files[0].name == "mapper.py");
  CHECK(a.files[0].option == "-file");
  CHECK(a.files[1].name == "reducer.py");
  CHECK(a.num_reduces == 1);
  CHECK_FALSE(a.num_reduces_given);
  CHECK_FALSE(a.map_only());
  CHECK(a.job_name == "streaming job");
  CHECK_FALSE(a.key_field_partitioner);
  CHECK_FALSE(a.overwrite);
  CHECK_FALSE(a.background);
  CHECK_FALSE(a.verbose);
  CHECK_FALSE(a.help);
}

TEST_CASE("streaming takes options in any order, generic options anywhere", "[streaming]") {
  StreamingArgs a = Parse({"-D", "mapreduce.job.reduces=2", "-files", "mapper.py,reducer.py", "-output", "out",
                           "-Dmapreduce.job.name=wc", "-reducer", "reducer.py", "-input", "in", "-mapper", "mapper.py",
                           "-overwrite", "-verbose", "-background", "-D", "stream.x=a=b"});
  CHECK(a.num_reduces == 2);
  CHECK(a.num_reduces_given);
  CHECK(a.job_name == "wc");
  REQUIRE(a.conf.size() == 3);
  CHECK(a.conf[0] == std::pair<std::string, std::string>{"mapreduce.job.reduces", "2"});
  CHECK(a.conf[1] == std::pair<std::string, std::string>{"mapreduce.job.name", "wc"});
  CHECK(a.conf[2] == std::pair<std::string, std::string>{"stream.x", "a=b"});  // split at the first '='
  REQUIRE(a.files.size() == 2);
  CHECK(a.files[1].local_path == "reducer.py");
  CHECK(a.files[1].option == "-files");
  CHECK(a.overwrite);
  CHECK(a.verbose);
  CHECK(a.background);
}

TEST_CASE("streaming map-only by -reducer NONE, -numReduceTasks 0 or mapreduce.job.reduces=0", "[streaming]") {
  const Argv base = {"-input", "in", "-output", "out", "-mapper", "cat"};
  StreamingArgs none = Parse(With(base, {"-reducer", "NONE", "-numReduceTasks", "3"}));
  CHECK(none.map_only());
  CHECK(none.reducer.text == "NONE");
  CHECK(none.reducer.argv.empty());
  CHECK(Parse(With(base, {"-numReduceTasks", "0"})).map_only());
  CHECK(Parse(With(base, {"-D", "mapreduce.job.reduces=0"})).map_only());
  CHECK(Parse(With(base, {"-D", "mapred.reduce.tasks=0"})).map_only());
}

TEST_CASE("streaming number of reduces -numReduceTasks over mapreduce.job.reduces over mapred.reduce.tasks",
          "[streaming]") {
  const Argv base = {"-input", "in", "-output", "out", "-mapper", "cat"};
  CHECK(Parse(base).num_reduces == 1);
  CHECK(Parse(With(base, {"-numReduceTasks", "4", "-D", "mapreduce.job.reduces=2"})).num_reduces == 4);
  CHECK(Parse(With(base, {"-D", "mapred.reduce.tasks=3", "-D", "mapreduce.job.reduces=2"})).num_reduces == 2);
  CHECK(Parse(With(base, {"-D", "mapred.reduce.tasks=3"})).num_reduces == 3);
  CHECK(Parse(With(base, {"-D", "mapred.job.name=old"})).job_name == "old");
  CHECK(Parse(With(base, {"-D", "mapred.job.name=old", "-D", "mapreduce.job.name=new"})).job_name == "new");
}

TEST_CASE("streaming parses a join with KeyFieldBasedPartitioner", "[streaming]") {
  StreamingArgs a = Parse({"-input",       "users",
                           "-input",       "orders",
                           "-output",      "joined",
                           "-mapper",      "join_map.py",
                           "-reducer",     "join_reduce.py",
                           "-file",        "join_map.py",
                           "-file",        "join_reduce.py",
                           "-partitioner", "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
                           "-D",           "stream.num.map.output.key.fields=2",
                           "-D",           "mapreduce.partition.keypartitioner.options=-k1,1"});
  CHECK(a.key_field_partitioner);
  CHECK(a.inputs == Argv{"users", "orders"});
  REQUIRE(a.conf.size() == 2);
  CHECK(a.conf[0].first == "stream.num.map.output.key.fields");
  CHECK(a.conf[0].second == "2");
  CHECK(a.conf[1].first == "mapreduce.partition.keypartitioner.options");
  CHECK(a.conf[1].second == "-k1,1");
  const Argv base = {"-input", "in", "-output", "out", "-mapper", "cat", "-partitioner"};
  CHECK(
      Parse(With(base, {"org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedPartitioner"})).key_field_partitioner);
  CHECK(Parse(With(base, {"KeyFieldBasedPartitioner"})).key_field_partitioner);
  CHECK_FALSE(Parse(With(base, {"org.apache.hadoop.mapred.lib.HashPartitioner"})).key_field_partitioner);
  CHECK_FALSE(Parse(With(base, {"HashPartitioner"})).key_field_partitioner);
}

TEST_CASE("streaming splits quoted commands into argv without a shell", "[streaming]") {
  StreamingArgs a = Parse({"-input", "in", "-output", "out", "-mapper", "python3 mapper.py --top 10", "-reducer",
                           "awk '{ s += $2 } END { print s }'", "-combiner", "python3 c.py \"a \\\"b\\\" c\" x\\ y"});
  CHECK(a.mapper.argv == Argv{"python3", "mapper.py", "--top", "10"});
  CHECK(a.mapper.text == "python3 mapper.py --top 10");
  CHECK(a.reducer.argv == Argv{"awk", "{ s += $2 } END { print s }"});
  CHECK(a.combiner.argv == Argv{"python3", "c.py", "a \"b\" c", "x y"});
  CHECK(SplitCommand("-mapper", "  cut  -f1 ''").value() == Argv{"cut", "-f1", ""});
  CHECK(SplitCommand("-mapper", "grep 'a|b'").value() == Argv{"grep", "a|b"});  // a quoted '|' is fine
}

TEST_CASE("streaming command errors for quotes, shell operators and empty commands", "[streaming]") {
  auto quote = SplitCommand("-mapper", "python3 mapper.py 'oops");
  REQUIRE_FALSE(quote.ok());
  CHECK(Contains(quote.status().message(), "-mapper 'python3 mapper.py 'oops' has a ' that is never closed"));
  auto pipe = SplitCommand("-mapper", "cut -f1 | sort");
  REQUIRE_FALSE(pipe.ok());
  CHECK(pipe.status().message() ==
        "-mapper 'cut -f1 | sort': commands run without a shell, so '|' would reach cut as a plain argument. Put "
        "the pipeline in a script and ship it with -file, or write -mapper \"bash -c 'cut -f1 | sort'\".");
  CHECK(Contains(ParseError({"-input", "in", "-output", "out", "-mapper", "cat > x"}), "'>' would reach cat"));
  CHECK(ParseError({"-input", "in", "-output", "out", "-mapper", "  "}) ==
        "-mapper is empty; give the program to run, as in -mapper mapper.py.");
}

TEST_CASE("streaming accepts repeated and comma-separated inputs", "[streaming]") {
  StreamingArgs a = Parse({"-input", "a,b", "-input", "logs/{jan,feb}/*.txt,", "-output", "o", "-mapper", "cat"});
  CHECK(a.inputs == Argv{"a", "b", "logs/{jan,feb}/*.txt"});
}

TEST_CASE("streaming -files takes a comma list with #name renaming", "[streaming]") {
  StreamingArgs a =
      Parse({"-input", "in", "-output", "o", "-mapper", "cat", "-files", "lib/helper.py#h.py,file:///tmp/x.txt"});
  REQUIRE(a.files.size() == 2);
  CHECK(a.files[0].local_path == "lib/helper.py");
  CHECK(a.files[0].name == "h.py");
  CHECK(a.files[1].local_path == "/tmp/x.txt");
  CHECK(a.files[1].name == "x.txt");
  const Argv base = {"-input", "in", "-output", "o", "-mapper", "cat"};
  CHECK(ParseError(With(base, {"-files", "a.py#sub/b.py"})) ==
        "-files 'a.py#sub/b.py': the name after '#' must be a plain file name, as in -files lib/helper.py#helper.py.");
  auto remote = ParseStreamingArgs(With(base, {"-files", "hdfs://nn/x.txt"}));
  REQUIRE_FALSE(remote.ok());
  CHECK(remote.status().code() == StatusCode::kNotSupported);
  CHECK(Contains(remote.status().message(), "only local files can be shipped"));
}

TEST_CASE("streaming -cmdenv and its error without '='", "[streaming]") {
  const Argv base = {"-input", "in", "-output", "o", "-mapper", "cat"};
  StreamingArgs a = Parse(With(base, {"-cmdenv", "LANG=C", "-cmdenv", "EMPTY="}));
  REQUIRE(a.cmdenv.size() == 2);
  CHECK(a.cmdenv[0] == std::pair<std::string, std::string>{"LANG", "C"});
  CHECK(a.cmdenv[1] == std::pair<std::string, std::string>{"EMPTY", ""});
  CHECK(ParseError(With(base, {"-cmdenv", "LANG"})) ==
        "-cmdenv 'LANG' is not NAME=value; write it as -cmdenv LANG=C.UTF-8 (one variable per -cmdenv).");
}

TEST_CASE("streaming unknown options name the closest known one", "[streaming]") {
  const Argv base = {"-input", "in", "-output", "o", "-mapper", "cat"};
  CHECK(ParseError(With(base, {"-mapepr", "x"})) == "unknown option -mapepr. Did you mean -mapper?");
  CHECK(ParseError(With(base, {"-numReduceTask", "2"})) ==
        "unknown option -numReduceTask. Did you mean -numReduceTasks?");
  CHECK(ParseError(With(base, {"-numreducetasks", "2"})) ==
        "unknown option -numreducetasks. Did you mean -numReduceTasks?");
  CHECK(ParseError({"-inptu", "in"}) == "unknown option -inptu. Did you mean -input?");
  CHECK(ParseError(With(base, {"-xyzzyplugh"})) ==
        "unknown option -xyzzyplugh. Run 'dfs streaming -help' to see the options.");
  CHECK(ParseError({"--input", "in"}) == "Hadoop streaming options take one dash: write -input, not --input.");
  auto jars = ParseStreamingArgs(With(base, {"-libjars", "x.jar"}));
  REQUIRE_FALSE(jars.ok());
  CHECK(jars.status().code() == StatusCode::kNotSupported);
  CHECK(Contains(jars.status().message(), "-libjars is a Hadoop option that dfs streaming does not support"));
}

TEST_CASE("streaming missing -input, -output or -mapper says which, with an example", "[streaming]") {
  const std::string example =
      " For example: dfs streaming -input in -output out -mapper mapper.py -reducer reducer.py -file mapper.py -file "
      "reducer.py";
  CHECK(ParseError({"-input", "in", "-output", "out"}) ==
        "missing -mapper: a job needs -input (what to read), -output (a new dfs directory for the results) and "
        "-mapper (the program to run)." +
            example);
  CHECK(Contains(ParseError({"-output", "out"}), "missing -input and -mapper: "));
  CHECK(Contains(ParseError({}), "missing -input, -output and -mapper: "));
  CHECK(Contains(ParseError({"-input", "in", "-mapper", "cat"}), "missing -output: "));
  StreamingArgs help = Parse({"-help"});
  CHECK(help.help);
  CHECK(Contains(StreamingUsage(), "Usage: dfs streaming -input <path> -output <dir> -mapper <cmd>"));
}

TEST_CASE("streaming checks numbers", "[streaming]") {
  const Argv base = {"-input", "in", "-output", "o", "-mapper", "cat"};
  CHECK(ParseError(With(base, {"-numReduceTasks", "two"})) ==
        "-numReduceTasks 'two' is not a whole number from 0 to 10000; give a whole number from 0 (map-only) to "
        "10000.");
  CHECK(ParseError(With(base, {"-numReduceTasks", "100000"})) ==
        "-numReduceTasks 100000 is more than 10000; give a whole number from 0 (map-only) to 10000.");
  CHECK(Contains(ParseError(With(base, {"-numReduceTasks", "-1"})), "-numReduceTasks '-1' is not a whole number"));
  CHECK(ParseError(With(base, {"-D", "mapreduce.job.reduces=2x"})) ==
        "-D mapreduce.job.reduces=2x: '2x' is not a whole number from 0 to 10000; give a whole number from 0 "
        "(map-only) to 10000.");
  CHECK(Contains(ParseError(With(base, {"-D", "stream.num.map.output.key.fields=0"})),
                 "-D stream.num.map.output.key.fields=0: 0 is less than 1; give how many tab-separated fields"));
}

TEST_CASE("streaming -D errors", "[streaming]") {
  const Argv base = {"-input", "in", "-output", "o", "-mapper", "cat"};
  CHECK(ParseError(With(base, {"-D", "mapreduce.job.reduces"})) ==
        "-D 'mapreduce.job.reduces' is not key=value; write it as -D mapreduce.job.reduces=2 (no spaces around "
        "'=').");
  CHECK(Contains(ParseError(With(base, {"-Dmapreduce.job.reduces", "2"})), "-D 'mapreduce.job.reduces' is not key"));
  CHECK(ParseError(With(base, {"-D"})) == "-D needs a value, as in -D mapreduce.job.reduces=2.");
}

TEST_CASE("streaming rejects partitioners and formats it does not have", "[streaming]") {
  const Argv base = {"-input", "in", "-output", "o", "-mapper", "cat"};
  auto p = ParseStreamingArgs(With(base, {"-partitioner", "com.example.MyPartitioner"}));
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().code() == StatusCode::kNotSupported);
  CHECK(Contains(p.status().message(),
                 "-partitioner com.example.MyPartitioner is not supported. dfs streaming knows "
                 "two partitioners: HashPartitioner"));
  CHECK(Contains(p.status().message(), "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner"));
  CHECK(ParseError(With(base, {"-inputformat", "org.apache.hadoop.mapred.SequenceFileInputFormat"})) ==
        "-inputformat org.apache.hadoop.mapred.SequenceFileInputFormat is not supported; dfs streaming reads text "
        "(TextInputFormat): each line goes to the mapper. Leave -inputformat out.");
  CHECK(Contains(ParseError(With(base, {"-outputformat", "SequenceFileOutputFormat"})),
                 "-outputformat SequenceFileOutputFormat is not supported; dfs streaming writes text"));
  Parse(With(base, {"-inputformat", "org.apache.hadoop.mapred.TextInputFormat", "-outputformat", "TextOutputFormat"}));
}

TEST_CASE("streaming explains stray words and missing values", "[streaming]") {
  const Argv base = {"-input", "in", "-output", "o"};
  CHECK(ParseError(With(base, {"-mapper", "python3", "mapper.py"})) ==
        "unexpected argument 'mapper.py' after -mapper. Quote a command that has arguments: -mapper 'python3 "
        "script.py --top 10'.");
  CHECK(ParseError(With(base, {"-mapper", "cat", "-file", "a.py", "b.py"})) ==
        "unexpected argument 'b.py' after -file. Each -file ships one file: write -file a.py -file b.py, or -files "
        "a.py,b.py.");
  CHECK(ParseError({"-input", "-output", "o"}) == "-input needs a value, as in -input in.");
  CHECK(ParseError(With(base, {"-mapper"})) == "-mapper needs a value, as in -mapper mapper.py.");
  CHECK(ParseError(With(base, {"-output", "p", "-mapper", "cat"})) ==
        "-output was given twice ('o' and 'p'); a job writes one output directory.");
  CHECK(ParseError(With(base, {"-mapper", "a.py", "-mapper", "b.py"})) ==
        "-mapper was given twice ('a.py' and 'b.py'); a job has one mapper.");
}

// ---- pre-flight ----

// An in-memory machine: files with contents, which of them are executable,
// directories, and the programs on $PATH.
struct FakeMachine {
  std::map<std::string, std::string> files;
  std::set<std::string> executables;
  std::set<std::string> dirs;
  std::set<std::string> programs = {"cat", "wc", "sort", "awk", "python3", "bash", "sh", "perl"};
  std::set<std::string> system = {"/usr/bin/env", "/usr/bin/python3", "/bin/sh", "/bin/bash"};

  void Script(const std::string& path, const std::string& content, bool executable = true) {
    files[path] = content;
    if (executable) executables.insert(path);
  }

  PreflightEnv Env() {
    // "./m.py" and "m.py" are one file, as on a real disk.
    auto norm = [](const std::string& p) { return std::filesystem::path(p).lexically_normal().string(); };
    PreflightEnv env;
    env.read_file = [this, norm](const std::string& p) -> Result<std::string> {
      if (dirs.count(norm(p))) return Status::IsADirectory(p + " is a directory");
      auto it = files.find(norm(p));
      if (it == files.end()) return Status::NotFound(p + ": no such file");
      return it->second;
    };
    env.exists = [this, norm](const std::string& p) {
      return files.count(norm(p)) || dirs.count(norm(p)) || system.count(p);
    };
    env.is_executable = [this, norm](const std::string& p) { return executables.count(norm(p)) > 0; };
    env.on_path = [this](const std::string& p) { return programs.count(p) > 0 || system.count(p) > 0; };
    return env;
  }
};

const std::string kMapper = "#!/usr/bin/env python3\nimport sys\nfor line in sys.stdin:\n    print(line)\n";
const std::string kReducer = "#!/usr/bin/env python3\nimport sys\nprint(sum(1 for _ in sys.stdin))\n";

PreflightResult Check(FakeMachine& m, const Argv& args) {
  PreflightEnv env = m.Env();
  auto r = Preflight(Parse(args), env);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

Status CheckError(FakeMachine& m, const Argv& args) {
  PreflightEnv env = m.Env();
  auto r = Preflight(Parse(args), env);
  REQUIRE_FALSE(r.ok());
  return r.status();
}

const proto::ShippedFile* FindFile(const proto::JobSpec& spec, const std::string& name) {
  for (const auto& f : spec.files()) {
    if (f.name() == name) return &f;
  }
  return nullptr;
}

size_t CountNotes(const PreflightResult& r, const std::string& part) {
  return std::count_if(r.notes.begin(), r.notes.end(), [&](const std::string& n) { return Contains(n, part); });
}

TEST_CASE("preflight builds the spec of a clean word count without notes", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", kMapper);
  m.Script("reducer.py", kReducer);
  PreflightResult r = Check(m, With(kWordCount, {"-D", "mapreduce.job.name=wc", "-cmdenv", "LANG=C"}));
  CHECK(r.notes.empty());
  const proto::JobSpec& s = r.spec;
  CHECK(s.name() == "wc");
  CHECK(ToVector(s.inputs()) == Argv{"books"});
  CHECK(s.output() == "counts");
  CHECK(ToVector(s.mapper()) == Argv{"./mapper.py"});
  CHECK(ToVector(s.reducer()) == Argv{"./reducer.py"});
  CHECK(s.combiner().empty());
  CHECK(s.num_reduces() == 1);
  CHECK(s.user().empty());
  CHECK(s.splits().empty());
  REQUIRE(s.files_size() == 2);
  CHECK(s.files(0).name() == "mapper.py");
  CHECK(s.files(0).content() == kMapper);
  CHECK(s.files(0).executable());
  CHECK(s.files(0).size() == kMapper.size());
  CHECK(s.files(0).digest() == XXH3_64bits(kMapper.data(), kMapper.size()));
  REQUIRE(s.conf_size() == 1);
  CHECK(s.conf(0).key() == "mapreduce.job.name");
  CHECK(s.conf(0).value() == "wc");
  REQUIRE(s.cmdenv_size() == 1);
  CHECK(s.cmdenv(0).key() == "LANG");
  CHECK(s.cmdenv(0).value() == "C");
  CHECK_FALSE(s.key_field_partitioner());
}

TEST_CASE("preflight converts CRLF once for a file shipped and named by mapper and combiner", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", "#!/usr/bin/env python3\r\nimport sys\r\nprint('x')\r\n");
  m.Script("reducer.py", kReducer);
  PreflightResult r = Check(m, With(kWordCount, {"-combiner", "mapper.py"}));
  CHECK(r.notes == Argv{"mapper.py has Windows line endings (CRLF); converted to Unix (LF) for the job. Save it "
                        "with LF endings to silence this."});
  const proto::ShippedFile* f = FindFile(r.spec, "mapper.py");
  REQUIRE(f != nullptr);
  CHECK(f->content() == "#!/usr/bin/env python3\nimport sys\nprint('x')\n");
  CHECK(f->size() == f->content().size());
  CHECK(f->digest() == XXH3_64bits(f->content().data(), f->content().size()));
  CHECK(ToVector(r.spec.combiner()) == Argv{"./mapper.py"});
  CHECK(r.spec.files_size() == 2);
}

TEST_CASE("preflight strips a UTF-8 BOM before the shebang", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", "\xEF\xBB\xBF" + kMapper);
  m.Script("reducer.py", kReducer);
  PreflightResult r = Check(m, kWordCount);
  CHECK(FindFile(r.spec, "mapper.py")->content() == kMapper);
  REQUIRE(r.notes.size() == 1);
  CHECK(r.notes[0] ==
        "mapper.py starts with a UTF-8 byte order mark (BOM), which hides its first line from the system; removed "
        "it for the job. Save it as UTF-8 without BOM to silence this.");
  CHECK(ToVector(r.spec.mapper()) == Argv{"./mapper.py"});
}

TEST_CASE("preflight runs a .py without shebang with python3", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", "import sys\n", false);
  m.Script("reducer.py", kReducer);
  PreflightResult r = Check(m, With(kWordCount, {"-combiner", "mapper.py -x"}));
  CHECK(ToVector(r.spec.mapper()) == Argv{"python3", "mapper.py"});
  CHECK(ToVector(r.spec.combiner()) == Argv{"python3", "mapper.py", "-x"});
  CHECK(r.notes == Argv{"mapper.py has no '#!' line, so it cannot run by itself; running it as 'python3 mapper.py'. "
                        "Make '#!/usr/bin/env python3' its first line to silence this."});
  CHECK_FALSE(FindFile(r.spec, "mapper.py")->executable());  // python3 runs it: no execute bit needed
}

TEST_CASE("preflight marks a script without the execute bit executable", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", kMapper, false);
  m.Script("reducer.py", kReducer);
  PreflightResult r = Check(m, kWordCount);
  CHECK(FindFile(r.spec, "mapper.py")->executable());
  CHECK(r.notes == Argv{"mapper.py is not executable here; shipping it with the execute bit set. Run 'chmod +x "
                        "mapper.py' to silence this."});
}

TEST_CASE("preflight ships a script the command names but no -file ships", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", kMapper);
  m.Script("src/reducer.py", kReducer);
  PreflightResult r = Check(
      m, {"-input", "in", "-output", "out", "-mapper", "mapper.py", "-reducer", "python3 -u src/reducer.py --n 3"});
  CHECK(r.notes == Argv{"mapper.py was not shipped with -file; shipping it for you.",
                        "src/reducer.py was not shipped with -file; shipping it for you as reducer.py."});
  CHECK(ToVector(r.spec.mapper()) == Argv{"./mapper.py"});
  CHECK(ToVector(r.spec.reducer()) == Argv{"python3", "-u", "reducer.py", "--n", "3"});
  REQUIRE(r.spec.files_size() == 2);
  CHECK(r.spec.files(1).name() == "reducer.py");
  CHECK(r.spec.files(1).content() == kReducer);
}

TEST_CASE("preflight errors for a command naming a file that is nowhere", "[streaming]") {
  FakeMachine m;
  Status s = CheckError(m, {"-input", "in", "-output", "out", "-mapper", "mapper.py"});
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(s.message() ==
        "-mapper: 'mapper.py' is not a file here and was not shipped with -file; check the name, and run dfs "
        "streaming from the directory that holds it (or ship it with -file path/to/mapper.py).");
  CHECK(Contains(
      CheckError(m, {"-input", "in", "-output", "out", "-mapper", "cat", "-reducer", "python3 red.py"}).message(),
      "-reducer: 'red.py' is not a file here and was not shipped with -file; "));
  CHECK(CheckError(m, {"-input", "in", "-output", "out", "-mapper", "catt"}).message() ==
        "-mapper: 'catt' is not a file here and was not shipped with -file, and there is no program 'catt' on PATH; "
        "check the spelling.");
  CHECK(Contains(CheckError(m, {"-input", "in", "-output", "out", "-mapper", "python m.py"}).message(),
                 "there is no program 'python' on PATH; did you mean python3?"));
}

TEST_CASE("preflight accepts programs on PATH and inline code", "[streaming]") {
  FakeMachine m;
  PreflightResult r = Check(m, {"-input", "in", "-output", "out", "-mapper", "cat", "-reducer", "wc -l", "-combiner",
                                "python3 -c 'import sys'"});
  CHECK(r.notes.empty());
  CHECK(ToVector(r.spec.mapper()) == Argv{"cat"});
  CHECK(ToVector(r.spec.reducer()) == Argv{"wc", "-l"});
  CHECK(ToVector(r.spec.combiner()) == Argv{"python3", "-c", "import sys"});
  CHECK(r.spec.files().empty());
  // An installed program by its full path is not shipped; its script is.
  m.Script("m.py", kMapper);
  PreflightResult full =
      Check(m, {"-input", "in", "-output", "out", "-mapper", "/usr/bin/python3 ./m.py", "-reducer", "NONE"});
  CHECK(ToVector(full.spec.mapper()) == Argv{"/usr/bin/python3", "m.py"});
  REQUIRE(full.spec.files_size() == 1);
  CHECK(full.spec.files(0).name() == "m.py");
  CHECK(full.notes == Argv{"./m.py was not shipped with -file; shipping it for you."});
  // Perl one-liners and awk programs are code, not file names.
  Check(m, {"-input", "in", "-output", "out", "-mapper", "perl -lane 'print $F[0]'", "-reducer", "awk '{print}'"});
}

TEST_CASE("preflight errors for a -file that is missing, a directory, or too big", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", kMapper);
  m.dirs.insert("scripts");
  const Argv base = {"-input", "in", "-output", "out", "-mapper", "mapper.py"};
  Status missing = CheckError(m, With(base, {"-file", "mapper.py", "-file", "stopwords.txt"}));
  CHECK(missing.code() == StatusCode::kNotFound);
  CHECK(missing.message() ==
        "-file: 'stopwords.txt' does not exist here; check the name, and run dfs streaming from the directory that "
        "holds it (or give its path).");
  Status dir = CheckError(m, With(base, {"-files", "scripts"}));
  CHECK(dir.code() == StatusCode::kIsADirectory);
  CHECK(dir.message() ==
        "-files: 'scripts' is a directory; ship the files in it one by one, as in -files "
        "scripts/a.py,scripts/b.py.");
  m.files["big.csv"] = std::string(kMaxShippedBytes - kMapper.size() + 1, 'x');
  Status big = CheckError(m, With(base, {"-file", "mapper.py", "-file", "big.csv"}));
  CHECK(big.code() == StatusCode::kInvalidArgument);
  CHECK(Contains(big.message(),
                 "the files shipped with -file/-files add up to 64.0 MiB (big.csv is 64.0 MiB), more "
                 "than the 64.0 MiB a job may ship. Put big data in dfs ('dfs put big.csv')"));
  m.files["big.csv"].pop_back();  // exactly the limit is fine
  Check(m, With(base, {"-file", "mapper.py", "-file", "big.csv"}));
}

TEST_CASE("preflight refuses a huge -file by its size before reading it", "[streaming]") {
  FakeMachine m;
  m.files["huge.bin"] = "";
  PreflightEnv env = m.Env();
  env.file_size = [](const std::string&) { return std::optional<uint64_t>(uint64_t{1} << 40); };
  env.read_file = [](const std::string&) -> Result<std::string> {
    FAIL("read_file called for a file over the limit");
    return std::string();
  };
  auto r = Preflight(Parse({"-input", "in", "-output", "out", "-mapper", "cat", "-file", "huge.bin"}), env);
  REQUIRE_FALSE(r.ok());
  CHECK(Contains(r.status().message(), "add up to 1048576.0 MiB"));
}

TEST_CASE("preflight warns about shebangs naming interpreters missing here", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", "#!/usr/bin/python\nprint(1)\n");
  m.Script("reducer.py", "#!/usr/bin/env python\nprint(1)\n");
  PreflightResult r = Check(m, kWordCount);
  REQUIRE(r.notes.size() == 2);
  CHECK(r.notes[0] ==
        "mapper.py starts with '#!/usr/bin/python', but there is no /usr/bin/python here; if the "
        "DataNodes lack it too, the task fails with 'No such file or directory'. Use "
        "'#!/usr/bin/env python3' instead.");
  CHECK(r.notes[1] ==
        "reducer.py starts with '#!/usr/bin/env python', but there is no 'python' on PATH here; if the "
        "DataNodes lack it too, the task fails to start. Use '#!/usr/bin/env python3' if that is what "
        "you mean.");
  CHECK(ToVector(r.spec.mapper()) == Argv{"./mapper.py"});  // a warning, not a fix
}

TEST_CASE("preflight map-only jobs, the identity reducer and partitioner options", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", kMapper);
  m.Script("reducer.py", kReducer);
  PreflightResult map_only = Check(m, With(kWordCount, {"-numReduceTasks", "0", "-combiner", "reducer.py"}));
  CHECK(map_only.spec.num_reduces() == 0);
  CHECK(map_only.spec.reducer().empty());
  CHECK(map_only.spec.combiner().empty());
  CHECK(map_only.notes == Argv{"The job is map-only (0 reduce tasks), so -reducer 'reducer.py' is not run.",
                               "The job is map-only (0 reduce tasks), so -combiner 'reducer.py' is not run."});
  PreflightResult none = Check(m, {"-input", "in", "-output", "out", "-mapper", "cat", "-reducer", "NONE"});
  CHECK(none.notes.empty());
  CHECK(none.spec.reducer().empty());
  PreflightResult identity = Check(m, {"-input", "in", "-output", "out", "-mapper", "cat"});
  CHECK(ToVector(identity.spec.reducer()) == Argv{"cat"});
  CHECK(identity.spec.num_reduces() == 1);
  CHECK(CountNotes(identity, "No -reducer given") == 1);
  PreflightResult keys = Check(m, With(kWordCount, {"-D", "mapreduce.partition.keypartitioner.options=-k1,1"}));
  CHECK(keys.notes == Argv{"-D mapreduce.partition.keypartitioner.options has no effect without -partitioner "
                           "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner; records go to reducers by their "
                           "whole key."});
  PreflightResult join =
      Check(m, With(kWordCount, {"-partitioner", "KeyFieldBasedPartitioner", "-D", "stream.num.map.output.key.fields=2",
                                 "-D", "mapreduce.partition.keypartitioner.options=-k1,1"}));
  CHECK(join.notes.empty());
  CHECK(join.spec.key_field_partitioner());
  CHECK(join.spec.conf_size() == 2);
}

TEST_CASE("preflight ships a file once and refuses two files with one name", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", kMapper);
  m.Script("a/util.py", "x = 1\n");
  m.Script("b/util.py", "x = 2\n");
  PreflightResult r = Check(m, {"-input", "in", "-output", "out", "-mapper", "./mapper.py", "-reducer", "NONE", "-file",
                                "mapper.py", "-files", "./mapper.py,a/util.py,b/util.py#util2.py"});
  REQUIRE(r.spec.files_size() == 3);
  CHECK(r.spec.files(1).name() == "util.py");
  CHECK(r.spec.files(2).name() == "util2.py");
  CHECK(ToVector(r.spec.mapper()) == Argv{"./mapper.py"});
  CHECK(r.notes.empty());
  Status s =
      CheckError(m, {"-input", "in", "-output", "out", "-mapper", "cat", "-file", "a/util.py", "-file", "b/util.py"});
  CHECK(s.message() ==
        "-file b/util.py and -file a/util.py would both be 'util.py' in the task's directory; rename "
        "one, as in -files b/util.py#other_util.py.");
}

TEST_CASE("preflight notes CRLF in a data file but ships it unchanged", "[streaming]") {
  FakeMachine m;
  m.Script("mapper.py", kMapper);
  m.files["stop.txt"] = "a\r\nthe\r\n";
  PreflightResult r = Check(m, {"-input", "in", "-output", "out", "-mapper", "mapper.py", "-file", "mapper.py", "-file",
                                "stop.txt", "-reducer", "NONE"});
  CHECK(FindFile(r.spec, "stop.txt")->content() == "a\r\nthe\r\n");
  CHECK_FALSE(FindFile(r.spec, "stop.txt")->executable());
  CHECK(CountNotes(r, "stop.txt has Windows line endings (CRLF); shipped as it is.") == 1);
}

// The real machine: a temp dir with a CRLF script that lacks the execute bit.
TEST_CASE("preflight with the local file system and PATH", "[streaming]") {
  char tmpl[] = "/tmp/dfs-streaming-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  const std::string mapper = dir + "/mapper.py";
  {
    std::ofstream out(mapper, std::ios::binary);
    out << "#!/bin/sh\r\ncat\r\n";
  }
  REQUIRE(chmod(mapper.c_str(), 0644) == 0);
  PreflightEnv env = PreflightEnv::Local();
  CHECK(env.on_path("sh"));
  CHECK_FALSE(env.on_path("no-such-program-for-dfs-tests"));
  CHECK(env.exists(dir));
  CHECK_FALSE(env.is_executable(mapper));
  CHECK(env.read_file(dir).status().code() == StatusCode::kIsADirectory);
  CHECK(env.file_size(mapper) == std::optional<uint64_t>(16));

  auto r = Preflight(
      Parse({"-input", "in", "-output", "out", "-mapper", "mapper.py", "-reducer", "wc -l", "-file", mapper}), env);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(ToVector(r->spec.mapper()) == Argv{"./mapper.py"});
  REQUIRE(r->spec.files_size() == 1);
  CHECK(r->spec.files(0).content() == "#!/bin/sh\ncat\n");
  CHECK(r->spec.files(0).executable());
  CHECK(r->notes.size() == 2);
  CHECK(CountNotes(*r, "Windows line endings") == 1);
  CHECK(CountNotes(*r, "is not executable here") == 1);

  auto missing = Preflight(Parse({"-input", "in", "-output", "out", "-mapper", "cat", "-file", dir + "/nope.py"}), env);
  CHECK(missing.status().code() == StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dfs::cli

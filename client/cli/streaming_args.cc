#include "client/cli/streaming_args.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <optional>
#include <string_view>

namespace dfs::cli {

namespace {

constexpr std::string_view kExample =
    "dfs streaming -input in -output out -mapper mapper.py -reducer reducer.py -file mapper.py -file reducer.py";

// Every option we accept, for suggestions. "D" also matches "-Dkey=value".
constexpr std::array<std::string_view, 19> kKnownOptions = {
    "input", "output", "mapper",      "reducer",   "combiner", "file",       "files",       "numReduceTasks",
    "D",     "cmdenv", "partitioner", "overwrite", "verbose",  "background", "inputformat", "outputformat",
    "help",  "info",   "jobconf"};

// Hadoop streaming options this runner does not have, with what to do instead.
struct Unsupported {
  std::string_view name;
  std::string_view advice;
};
constexpr std::array<Unsupported, 12> kUnsupportedOptions = {{
    {"libjars", "there is no JVM here: ship scripts with -file"},
    {"archives", "ship the files themselves with -file or -files"},
    {"cacheArchive", "ship the files themselves with -file or -files"},
    {"cacheFile", "ship local files with -file, or read dfs files as another -input"},
    {"inputreader", "only plain text input is supported"},
    {"io", "only plain text (tab-separated key and value) is supported"},
    {"mapdebug", "read the failed attempts' stderr with the job's logs instead"},
    {"reducedebug", "read the failed attempts' stderr with the job's logs instead"},
    {"lazyOutput", "empty part files are always written"},
    {"conf", "pass settings with -D key=value"},
    {"fs", "give the NameNode before the command: dfs -fs host:port streaming ..."},
    {"jt", "jobs run on the cluster dfs talks to"},
}};

bool TakesValue(std::string_view name) {
  static constexpr std::array<std::string_view, 14> kWithValue = {
      "input",          "output", "mapper", "reducer",     "combiner",    "file",         "files",
      "numReduceTasks", "D",      "cmdenv", "partitioner", "inputformat", "outputformat", "jobconf"};
  return std::find(kWithValue.begin(), kWithValue.end(), name) != kWithValue.end();
}

// An option with a typical value, for "needs a value" messages.
std::string ValueExample(std::string_view name) {
  if (name == "D" || name == "jobconf") return "-" + std::string(name) + " mapreduce.job.reduces=2";
  if (name == "cmdenv") return "-cmdenv LANG=C.UTF-8";
  if (name == "numReduceTasks") return "-numReduceTasks 2";
  if (name == "input") return "-input in";
  if (name == "output") return "-output out";
  if (name == "files") return "-files mapper.py,reducer.py";
  if (name == "partitioner") return "-partitioner KeyFieldBasedPartitioner";
  if (name == "inputformat") return "-inputformat TextInputFormat";
  if (name == "outputformat") return "-outputformat TextOutputFormat";
  if (name == "reducer") return "-reducer reducer.py";
  if (name == "combiner") return "-combiner reducer.py";
  return "-" + std::string(name) + " mapper.py";
}

bool IsKnown(std::string_view name) {
  return std::find(kKnownOptions.begin(), kKnownOptions.end(), name) != kKnownOptions.end();
}

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Optimal string alignment distance, ignoring case: a swapped pair of letters
// ("-mpaper") counts as one edit, as students' typos usually are.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = Lower(a[i - 1]) == Lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && Lower(a[i - 1]) == Lower(b[j - 2]) && Lower(a[i - 2]) == Lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The known option closest to `name`, when it is close enough to be a typo.
std::optional<std::string_view> Closest(std::string_view name) {
  std::optional<std::string_view> best;
  size_t best_d = 0;
  for (std::string_view k : kKnownOptions) {
    if (k.size() < 2) continue;  // "-D" is close to every two-letter word
    size_t d = EditDistance(name, k);
    if (!best || d < best_d) {
      best = k;
      best_d = d;
    }
  }
  if (best && best_d <= std::max<size_t>(2, best->size() / 3)) return best;
  return std::nullopt;
}

Status UnknownOption(const std::string& arg, std::string_view name) {
  std::string msg = "unknown option " + arg + ".";
  if (auto c = Closest(name)) {
    msg += " Did you mean -" + std::string(*c) + "?";
  } else {
    msg += " Run 'dfs streaming -help' to see the options.";
  }
  return Status::InvalidArgument(msg);
}

// Whole number in [lo, hi]; `what` names it in messages ("-numReduceTasks",
// "-D mapreduce.job.reduces").
Result<uint32_t> ParseCount(const std::string& what, const std::string& text, uint32_t lo, uint32_t hi,
                            std::string_view range_hint) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end || v < lo || v > hi) {
    std::string why =
        text.empty() ? "is empty"
                     : "'" + text + "' is not a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
    if (!text.empty() && ec == std::errc() && p == end) {
      why =
          std::to_string(v) + " is " + (v < lo ? "less than " + std::to_string(lo) : "more than " + std::to_string(hi));
    }
    return Status::InvalidArgument(what + " " + why + "; give " + std::string(range_hint) + ".");
  }
  return static_cast<uint32_t>(v);
}

constexpr std::string_view kReducesHint = "a whole number from 0 (map-only) to 10000";

// -D keys whose values are numbers we can check now rather than fail on later.
struct NumericKey {
  std::string_view key;
  uint32_t lo, hi;
  std::string_view hint;
};
constexpr std::array<NumericKey, 6> kNumericKeys = {{
    {"mapreduce.job.reduces", 0, kMaxReduceTasks, kReducesHint},
    {"mapred.reduce.tasks", 0, kMaxReduceTasks, kReducesHint},
    {"mapreduce.job.maps", 1, 1000000, "a whole number of maps (it is only a hint)"},
    {"mapred.map.tasks", 1, 1000000, "a whole number of maps (it is only a hint)"},
    {"stream.num.map.output.key.fields", 1, 1000, "how many tab-separated fields make the key, 1 or more"},
    {"stream.num.reduce.output.key.fields", 1, 1000, "how many tab-separated fields make the key, 1 or more"},
}};

Status AddConf(StreamingArgs* out, const std::string& option, const std::string& kv) {
  size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument(option + " '" + kv + "' is not key=value; write it as " + option +
                                   " mapreduce.job.reduces=2 (no spaces around '=').");
  }
  std::string key = kv.substr(0, eq);
  std::string value = kv.substr(eq + 1);
  for (const auto& n : kNumericKeys) {
    if (key == n.key) {
      auto r = ParseCount("-D " + key + "=" + value + ":", value, n.lo, n.hi, n.hint);
      if (!r.ok()) return r.status();
    }
  }
  out->conf.emplace_back(std::move(key), std::move(value));
  return Status::OK();
}

Status AddCmdenv(StreamingArgs* out, const std::string& kv) {
  size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument("-cmdenv '" + kv +
                                   "' is not NAME=value; write it as -cmdenv LANG=C.UTF-8 (one variable per -cmdenv).");
  }
  out->cmdenv.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  return Status::OK();
}

// Splits on commas outside {...}: "a,b/{c,d}" is two paths, as in Hadoop's
// FileInputFormat.addInputPaths.
std::vector<std::string> SplitInputs(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '{') ++depth;
    if (c == '}' && depth > 0) --depth;
    if (c == ',' && depth == 0) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

Status AddShip(StreamingArgs* out, const std::string& option, const std::string& spec) {
  std::string path = spec;
  std::string name;
  if (option == "-files") {
    // Hadoop's -files a.py#b.py ships a.py under the name b.py.
    size_t hash = path.find('#');
    if (hash != std::string::npos) {
      name = path.substr(hash + 1);
      path = path.substr(0, hash);
      if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
        return Status::InvalidArgument("-files '" + spec + "': the name after '#' must be a plain file name, as in " +
                                       "-files lib/helper.py#helper.py.");
      }
    }
  }
  if (path.rfind("file://", 0) == 0) path = path.substr(7);
  if (path.find("://") != std::string::npos) {
    return Status::NotSupported(option + " '" + spec +
                                "': only local files can be shipped. To use a file already in dfs, read it as "
                                "another -input, or get it first with 'dfs get'.");
  }
  if (path.empty())
    return Status::InvalidArgument(option + " needs a local file name, as in " + option + " mapper.py.");
  if (name.empty()) name = BaseName(path);
  out->files.push_back(ShipRequest{path, name, option});
  return Status::OK();
}

// Sets a single-valued option, refusing a second, different value.
Status SetOnce(std::string* slot, const std::string& option, const std::string& value, std::string_view why) {
  if (!slot->empty() && *slot != value) {
    return Status::InvalidArgument(option + " was given twice ('" + *slot + "' and '" + value + "'); " +
                                   std::string(why) + ".");
  }
  *slot = value;
  return Status::OK();
}

bool OneOf(const std::string& v, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), v) != names.end();
}

// What to say about a word that is not an option, given the option before it.
std::string StrayHint(const std::string& prev) {
  if (prev == "-file") return " Each -file ships one file: write -file a.py -file b.py, or -files a.py,b.py.";
  if (prev == "-input") return " Repeat -input for each input (or separate them with commas).";
  if (prev == "-mapper" || prev == "-reducer" || prev == "-combiner") {
    return " Quote a command that has arguments: " + prev + " 'python3 script.py --top 10'.";
  }
  return " Options take one dash and a value, as in -input in -output out.";
}

// Each -input/-output/-mapper that is missing, for the message.
Status MissingRequired(const StreamingArgs& a) {
  std::vector<std::string> missing;
  if (a.inputs.empty()) missing.push_back("-input");
  if (a.output.empty()) missing.push_back("-output");
  if (!a.mapper.given()) missing.push_back("-mapper");
  if (missing.empty()) return Status::OK();
  std::string list = missing[0];
  for (size_t i = 1; i < missing.size(); ++i) list += (i + 1 == missing.size() ? " and " : ", ") + missing[i];
  return Status::InvalidArgument("missing " + list +
                                 ": a job needs -input (what to read), -output (a new dfs directory for the results) "
                                 "and -mapper (the program to run). For example: " +
                                 std::string(kExample));
}

std::optional<std::string> LastConf(const StreamingArgs& a, std::string_view key) {
  std::optional<std::string> v;
  for (const auto& [k, val] : a.conf) {
    if (k == key) v = val;
  }
  return v;
}

}  // namespace

Result<std::vector<std::string>> SplitCommand(const std::string& option, const std::string& text) {
  std::vector<std::string> argv;
  std::string cur;
  bool in_word = false;
  bool quoted = false;  // part of the current word was quoted: not an operator
  char quote = 0;
  auto end_word = [&]() -> Status {
    if (!in_word) return Status::OK();
    if (!quoted && OneOf(cur, {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>", "2>&1", "&>"})) {
      std::string prog = argv.empty() ? std::string("the program") : argv[0];
      return Status::InvalidArgument(
          option + " '" + text + "': commands run without a shell, so '" + cur + "' would reach " + prog +
          " as a plain argument. Put the pipeline in a script and ship it with -file, or write " + option +
          " \"bash -c '" + text + "'\".");
    }
    argv.push_back(std::move(cur));
    cur.clear();
    in_word = false;
    quoted = false;
    return Status::OK();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote == '\'') {
      if (c == '\'') {
        quote = 0;
      } else {
        cur += c;
      }
    } else if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) {
        cur += text[++i];
      } else {
        cur += c;
      }
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      DFS_RETURN_IF_ERROR(end_word());
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = quoted = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      cur += text[++i];
      in_word = quoted = true;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote != 0) {
    return Status::InvalidArgument(option + " '" + text + "' has a " + (quote == '\'' ? "'" : "\"") +
                                   " that is never closed; close the quote, or quote the whole command the other "
                                   "way: " +
                                   option + " \"python3 mapper.py 'a b'\".");
  }
  DFS_RETURN_IF_ERROR(end_word());
  if (argv.empty()) {
    return Status::InvalidArgument(option + " is empty; give the program to run, as in " + option + " mapper.py.");
  }
  return argv;
}

Result<StreamingArgs> ParseStreamingArgs(const std::vector<std::string>& args) {
  StreamingArgs out;
  std::string num_reduce_tasks;  // -numReduceTasks as given
  std::string partitioner, inputformat, outputformat;
  std::string prev_option;  // for hints about stray words
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return Status::InvalidArgument("unexpected argument '" + arg + "'" +
                                     (prev_option.empty() ? std::string() : " after " + prev_option) + "." +
                                     StrayHint(prev_option));
    }
    if (arg[1] == '-') {
      std::string name = arg.substr(2);
      if (IsKnown(name) || (name.size() > 1 && name[0] == 'D')) {
        return Status::InvalidArgument("Hadoop streaming options take one dash: write -" + name + ", not " + arg + ".");
      }
      return UnknownOption(arg, name);
    }
    std::string name = arg.substr(1);
    // -Dkey=value, stuck together.
    if (name.size() > 1 && name[0] == 'D') {
      DFS_RETURN_IF_ERROR(AddConf(&out, "-D", name.substr(1)));
      prev_option = "-D";
      continue;
    }
    for (const auto& u : kUnsupportedOptions) {
      if (name == u.name) {
        return Status::NotSupported(arg + " is a Hadoop option that dfs streaming does not support; " +
                                    std::string(u.advice) + ".");
      }
    }
    if (!IsKnown(name)) return UnknownOption(arg, name);
    prev_option = arg;

    std::string value;
    if (TakesValue(name)) {
      bool missing = i + 1 >= args.size() || args[i + 1].empty() ||
                     (args[i + 1].size() > 1 && args[i + 1][0] == '-' && IsKnown(args[i + 1].substr(1)));
      if (missing) {
        std::string example = ValueExample(name);
        return Status::InvalidArgument(arg + " needs a value, as in " + example + ".");
      }
      value = args[++i];
    }

    if (name == "input") {
      for (auto& p : SplitInputs(value)) out.inputs.push_back(std::move(p));
    } else if (name == "output") {
      DFS_RETURN_IF_ERROR(SetOnce(&out.output, arg, value, "a job writes one output directory"));
    } else if (name == "mapper" || name == "reducer" || name == "combiner") {
      StreamingCommand& cmd = name == "mapper" ? out.mapper : name == "reducer" ? out.reducer : out.combiner;
      DFS_RETURN_IF_ERROR(SetOnce(&cmd.text, arg, value, "a job has one " + name));
      if (name == "reducer" && value == "NONE") {
        cmd.argv.clear();
      } else {
        DFS_ASSIGN_OR_RETURN(cmd.argv, SplitCommand(arg, value));
      }
    } else if (name == "file") {
      DFS_RETURN_IF_ERROR(AddShip(&out, arg, value));
    } else if (name == "files") {
      bool any = false;
      for (auto& f : SplitInputs(value)) {
        DFS_RETURN_IF_ERROR(AddShip(&out, arg, f));
        any = true;
      }
      if (!any)
        return Status::InvalidArgument("-files needs a comma-separated list of local files, as in -files a.py,b.py.");
    } else if (name == "numReduceTasks") {
      DFS_RETURN_IF_ERROR(SetOnce(&num_reduce_tasks, arg, value, "give the number of reduce tasks once"));
      DFS_RETURN_IF_ERROR(ParseCount(arg, value, 0, kMaxReduceTasks, kReducesHint).status());
    } else if (name == "D" || name == "jobconf") {
      DFS_RETURN_IF_ERROR(AddConf(&out, arg, value));
    } else if (name == "cmdenv") {
      DFS_RETURN_IF_ERROR(AddCmdenv(&out, value));
    } else if (name == "partitioner") {
      DFS_RETURN_IF_ERROR(SetOnce(&partitioner, arg, value, "a job has one partitioner"));
      if (OneOf(value,
                {"org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
                 "org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedPartitioner", "KeyFieldBasedPartitioner"})) {
        out.key_field_partitioner = true;
      } else if (!OneOf(value, {"org.apache.hadoop.mapred.lib.HashPartitioner",
                                "org.apache.hadoop.mapreduce.lib.partition.HashPartitioner", "HashPartitioner"})) {
        return Status::NotSupported(
            "-partitioner " + value +
            " is not supported. dfs streaming knows two partitioners: HashPartitioner (the default, by the whole "
            "key) and org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner (by the key fields that "
            "-D mapreduce.partition.keypartitioner.options=-k1,1 picks).");
      }
    } else if (name == "inputformat" || name == "outputformat") {
      const bool in = name == "inputformat";
      DFS_RETURN_IF_ERROR(SetOnce(in ? &inputformat : &outputformat, arg, value, "give it once"));
      const bool text = in ? OneOf(value, {"TextInputFormat", "org.apache.hadoop.mapred.TextInputFormat",
                                           "org.apache.hadoop.mapreduce.lib.input.TextInputFormat"})
                           : OneOf(value, {"TextOutputFormat", "org.apache.hadoop.mapred.TextOutputFormat",
                                           "org.apache.hadoop.mapreduce.lib.output.TextOutputFormat"});
      if (!text) {
        return Status::NotSupported(arg + " " + value + " is not supported; dfs streaming " +
                                    (in ? "reads text (TextInputFormat): each line goes to the mapper"
                                        : "writes text (TextOutputFormat): key, tab, value on each line") +
                                    ". Leave " + arg + " out.");
      }
    } else if (name == "overwrite") {
      out.overwrite = true;
    } else if (name == "verbose") {
      out.verbose = true;
    } else if (name == "background") {
      out.background = true;
    } else if (name == "help" || name == "info") {
      out.help = true;
    }
  }
  if (out.help) return out;
  DFS_RETURN_IF_ERROR(MissingRequired(out));

  if (out.reducer.text == "NONE") {
    out.num_reduces = 0;
    out.num_reduces_given = true;
  } else if (!num_reduce_tasks.empty()) {
    out.num_reduces = ParseCount("", num_reduce_tasks, 0, kMaxReduceTasks, "").value();
    out.num_reduces_given = true;
  } else if (auto v = LastConf(out, "mapreduce.job.reduces"); v || (v = LastConf(out, "mapred.reduce.tasks"))) {
    out.num_reduces = ParseCount("", *v, 0, kMaxReduceTasks, "").value();  // checked in AddConf
    out.num_reduces_given = true;
  }
  if (auto n = LastConf(out, "mapreduce.job.name"); n && !n->empty()) {
    out.job_name = *n;
  } else if (auto o = LastConf(out, "mapred.job.name"); o && !o->empty()) {
    out.job_name = *o;
  }
  return out;
}

std::string StreamingUsage() {
  return "Usage: dfs streaming -input <path> -output <dir> -mapper <cmd> [options]\n"
         "\n"
         "Runs a MapReduce job whose mapper and reducer are programs that read lines on\n"
         "stdin and write key<TAB>value lines on stdout, as Hadoop streaming does.\n"
         "\n"
         "  -input <path>            dfs file, directory or glob to read; repeat it, or use a,b\n"
         "  -output <dir>            dfs directory for the results; must not exist (see -overwrite)\n"
         "  -mapper <cmd>            the map program, e.g. mapper.py or 'python3 mapper.py --top 10'\n"
         "  -reducer <cmd>|NONE      the reduce program; NONE for a map-only job\n"
         "  -combiner <cmd>          a program run on each map's sorted output before the reduce\n"
         "  -file <local file>       ship a local file to each task's directory; repeat it\n"
         "  -files a,b#name,...      ship several; 'b#name' ships b under the name 'name'\n"
         "  -numReduceTasks <n>      how many reduce tasks (default 1; 0: map-only)\n"
         "  -D key=value             a job setting, e.g. -D mapreduce.job.reduces=2,\n"
         "                           -D stream.num.map.output.key.fields=2, -D mapreduce.job.name=wc\n"
         "  -cmdenv NAME=value       set an environment variable for the programs; repeat it\n"
         "  -partitioner KeyFieldBasedPartitioner\n"
         "                           partition by the key fields that\n"
         "                           -D mapreduce.partition.keypartitioner.options=-k1,1 picks\n"
         "  -overwrite               replace the output directory if it exists\n"
         "  -background              submit the job and return without waiting\n"
         "  -verbose                 say more while the job runs\n"
         "  -help                    this text\n"
         "\n"
         "Commands run without a shell, in a directory holding the shipped files.\n"
         "\n"
         "Example:\n  " +
         std::string(kExample) + "\n";
}

}  // namespace dfs::cli

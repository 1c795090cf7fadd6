#include "client/cli/streaming_preflight.h"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

namespace dfs::cli {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string Extension(const std::string& name) {
  size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0 || name.find('/', dot) != std::string::npos) return "";
  return name.substr(dot + 1);
}

bool HasScriptExtension(const std::string& name) {
  static const std::vector<std::string> kExts = {"py", "sh", "bash", "pl", "rb", "R", "r", "js", "php", "awk", "lua"};
  return std::find(kExts.begin(), kExts.end(), Extension(name)) != kExts.end();
}

// The program to run a script with when it has no "#!" line, by extension.
std::string InterpreterFor(const std::string& name) {
  const std::string ext = Extension(name);
  if (ext == "py") return "python3";
  if (ext == "sh") return "sh";
  if (ext == "bash") return "bash";
  if (ext == "pl") return "perl";
  if (ext == "rb") return "ruby";
  return "";
}

// Programs that run a script given as their first operand.
bool IsInterpreter(const std::string& program) {
  const std::string base = fs::path(program).filename().string();
  for (std::string_view family : {"python", "pypy"}) {  // python, python3, python3.12, pypy3
    if (StartsWith(base, family)) return base.find_first_not_of("0123456789.", family.size()) == std::string::npos;
  }
  static const std::vector<std::string> kOthers = {"bash", "sh",   "dash", "zsh",     "ksh", "perl",
                                                   "ruby", "node", "php",  "Rscript", "lua"};
  return std::find(kOthers.begin(), kOthers.end(), base) != kOthers.end();
}

// The index of the script operand of an interpreter command, if it has one:
// `python3 -u mapper.py x` → 2; `python3 -c '...'`, `bash -c '...'` → none.
std::optional<size_t> ScriptOperand(const std::vector<std::string>& argv) {
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") return i + 1 < argv.size() ? std::optional<size_t>(i + 1) : std::nullopt;
    if (a == "-c" || a == "-m" || a == "-e" || a == "-") return std::nullopt;
    if (a == "-W" || a == "-X") {  // python options with a separate value
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    return i;
  }
  return std::nullopt;
}

// A word that a student means as a file name rather than a program or code.
bool LooksLikeFile(const std::string& w) {
  if (w.find_first_of(" \t\n'\"$;|") != std::string::npos) return false;
  return w.find('/') != std::string::npos || HasScriptExtension(w);
}

bool IsBinary(std::string_view content) {
  return StartsWith(content,
                    "\x7f"
                    "ELF") ||
         content.substr(0, 8192).find('\0') != std::string_view::npos;
}

// Where installed programs live, as opposed to a student's scripts.
bool IsSystemPath(const std::string& path) {
  for (std::string_view dir : {"/usr/", "/bin/", "/sbin/", "/opt/", "/lib/", "/etc/", "/nix/"}) {
    if (StartsWith(path, dir)) return true;
  }
  return false;
}

// "./a//b.py" → "a/b.py": two spellings of one local file ship it once.
std::string Normalize(const std::string& path) { return fs::path(path).lexically_normal().string(); }

std::string MiB(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

std::string ReplaceCrlf(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    out += s[i];
  }
  return out;
}

std::vector<std::string> Words(std::string_view line) {
  std::vector<std::string> words;
  std::istringstream in{std::string(line)};
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// A local file on its way into the job.
struct Staged {
  std::string local_path;  // as the user spelled it, for messages
  std::string normalized;
  std::string name;    // in the task's working directory
  std::string option;  // "-file", "-files", or the command that shipped it
  std::string content;
  bool locally_executable = false;
  bool as_program = false;  // argv[0] of a command: it must run by itself
  bool as_script = false;   // the operand of an interpreter (python3 x.py)
  std::string run_with;     // set when it has no "#!": the interpreter to put in front
  bool executable = false;  // set by Finish
};

// A command with the shipped files its words name.
struct Resolved {
  std::string option;  // "-mapper"
  std::vector<std::string> argv;
  std::optional<size_t> program;    // argv[0] is staged_[*program]
  std::optional<size_t> script_at;  // argv[*script_at] is staged_[*script]
  std::optional<size_t> script;
};

class Builder {
 public:
  Builder(const StreamingArgs& args, const PreflightEnv& env) : args_(args), env_(env) {}

  Result<PreflightResult> Run() {
    for (const ShipRequest& req : args_.files) DFS_RETURN_IF_ERROR(Stage(req, false).status());

    std::vector<Resolved> commands;
    DFS_ASSIGN_OR_RETURN(Resolved mapper, Resolve("-mapper", args_.mapper));
    commands.push_back(std::move(mapper));
    const bool reducer_given = args_.reducer.given() && args_.reducer.text != "NONE";
    if (args_.map_only()) {
      if (reducer_given) {
        Note("The job is map-only (0 reduce tasks), so -reducer '" + args_.reducer.text + "' is not run.");
      }
      if (args_.combiner.given()) {
        Note("The job is map-only (0 reduce tasks), so -combiner '" + args_.combiner.text + "' is not run.");
      }
    } else {
      if (reducer_given) {
        DFS_ASSIGN_OR_RETURN(Resolved r, Resolve("-reducer", args_.reducer));
        commands.push_back(std::move(r));
      } else {
        Note(
            "No -reducer given: the reduce tasks write the sorted map output as it is (Hadoop's identity "
            "reducer). Use -reducer NONE for a map-only job.");
      }
      if (args_.combiner.given()) {
        DFS_ASSIGN_OR_RETURN(Resolved c, Resolve("-combiner", args_.combiner));
        commands.push_back(std::move(c));
      }
    }
    CheckPartitionerConf();

    for (Staged& s : staged_) Finish(s);

    PreflightResult result;
    proto::JobSpec& spec = result.spec;
    spec.set_name(args_.job_name);
    for (const auto& in : args_.inputs) spec.add_inputs(in);
    spec.set_output(args_.output);
    for (Resolved& c : commands) {
      auto* field = c.option == "-mapper"    ? spec.mutable_mapper()
                    : c.option == "-reducer" ? spec.mutable_reducer()
                                             : spec.mutable_combiner();
      for (const auto& w : Rewrite(c)) field->Add(std::string(w));
    }
    if (!args_.map_only() && !reducer_given) spec.add_reducer("cat");
    spec.set_num_reduces(args_.num_reduces);
    for (Staged& s : staged_) {
      proto::ShippedFile* f = spec.add_files();
      f->set_name(s.name);
      f->set_digest(XXH3_64bits(s.content.data(), s.content.size()));
      f->set_size(s.content.size());
      f->set_executable(s.executable);
      f->set_content(std::move(s.content));
    }
    for (const auto& [k, v] : args_.conf) {
      proto::KeyValue* kv = spec.add_conf();
      kv->set_key(k);
      kv->set_value(v);
    }
    for (const auto& [k, v] : args_.cmdenv) {
      proto::KeyValue* kv = spec.add_cmdenv();
      kv->set_key(k);
      kv->set_value(v);
    }
    spec.set_key_field_partitioner(args_.key_field_partitioner);
    result.notes = std::move(notes_);
    return result;
  }

 private:
  void Note(std::string note) {
    if (std::find(notes_.begin(), notes_.end(), note) == notes_.end()) notes_.push_back(std::move(note));
  }

  std::optional<size_t> FindStaged(const std::string& word) const {
    const std::string norm = Normalize(word);
    for (size_t i = 0; i < staged_.size(); ++i) {
      if (word.find('/') == std::string::npos && staged_[i].name == word) return i;
      if (staged_[i].normalized == norm) return i;
    }
    return std::nullopt;
  }

  // Reads a local file into the job. Returns its index.
  Result<size_t> Stage(const ShipRequest& req, bool auto_shipped) {
    const std::string norm = Normalize(req.local_path);
    for (size_t i = 0; i < staged_.size(); ++i) {
      if (staged_[i].name != req.name) continue;
      if (staged_[i].normalized == norm) return i;  // the same file twice: ship it once
      return Status::InvalidArgument(req.option + " " + req.local_path + " and " + staged_[i].option + " " +
                                     staged_[i].local_path + " would both be '" + req.name +
                                     "' in the task's directory; rename one, as in -files " + req.local_path + "#" +
                                     "other_" + req.name + ".");
    }
    if (!env_.exists(req.local_path)) {
      return Status::NotFound(req.option + ": '" + req.local_path +
                              "' does not exist here; check the name, and run dfs streaming from the directory that "
                              "holds it (or give its path).");
    }
    if (env_.file_size) {
      if (auto size = env_.file_size(req.local_path); size && shipped_bytes_ + *size > kMaxShippedBytes) {
        return TooBig(shipped_bytes_ + *size, req.local_path, *size);
      }
    }
    Result<std::string> content = env_.read_file(req.local_path);
    if (!content.ok()) {
      if (content.status().code() == StatusCode::kIsADirectory) {
        return Status::IsADirectory(req.option + ": '" + req.local_path +
                                    "' is a directory; ship the files in it one by one, as in -files " +
                                    req.local_path + "/a.py," + req.local_path + "/b.py.");
      }
      return content.status().Prepend(req.option + ": cannot read '" + req.local_path + "'");
    }
    shipped_bytes_ += content->size();
    if (shipped_bytes_ > kMaxShippedBytes) return TooBig(shipped_bytes_, req.local_path, content->size());
    Staged s;
    s.local_path = req.local_path;
    s.normalized = norm;
    s.name = req.name;
    s.option = req.option;
    s.content = std::move(content).value();
    s.locally_executable = env_.is_executable(req.local_path);
    staged_.push_back(std::move(s));
    if (auto_shipped) {
      std::string as = req.name == norm ? "" : " as " + req.name;
      Note(req.local_path + " was not shipped with -file; shipping it for you" + as + ".");
    }
    return staged_.size() - 1;
  }

  Status TooBig(uint64_t total, const std::string& path, uint64_t size) const {
    return Status::InvalidArgument("the files shipped with -file/-files add up to " + MiB(total) + " (" + path +
                                   " is " + MiB(size) + "), more than the " + MiB(kMaxShippedBytes) +
                                   " a job may ship. Put big data in dfs ('dfs put " + path +
                                   "') and read it from the cluster instead, as another -input.");
  }

  // The shipped file `word` names, shipping it when it exists here but was not
  // shipped. nullopt: no such local file (or a directory, for a bare name).
  Result<std::optional<size_t>> Lookup(const std::string& option, const std::string& word) {
    if (auto i = FindStaged(word)) return std::optional<size_t>(*i);
    if (!env_.exists(word)) return std::optional<size_t>();
    Result<size_t> i = Stage(ShipRequest{word, fs::path(word).filename().string(), option}, true);
    if (!i.ok()) {
      // A directory called "sort" beside the student does not hide /usr/bin/sort.
      if (i.status().code() == StatusCode::kIsADirectory && word.find('/') == std::string::npos) {
        return std::optional<size_t>();
      }
      return i.status();
    }
    return std::optional<size_t>(*i);
  }

  Status NotHere(const std::string& option, const std::string& word, bool program) const {
    if (!program || LooksLikeFile(word)) {
      return Status::NotFound(option + ": '" + word +
                              "' is not a file here and was not shipped with -file; check the name, and run dfs "
                              "streaming from the directory that holds it (or ship it with -file path/to/" +
                              fs::path(word).filename().string() + ").");
    }
    std::string hint = "check the spelling";
    if (word == "python" && env_.on_path("python3")) hint = "did you mean python3?";
    return Status::NotFound(option + ": '" + word +
                            "' is not a file here and was not shipped with -file, and there is no program '" + word +
                            "' on PATH; " + hint + ".");
  }

  Result<Resolved> Resolve(const std::string& option, const StreamingCommand& cmd) {
    Resolved r;
    r.option = option;
    r.argv = cmd.argv;
    if (r.argv.empty()) {
      return Status::InvalidArgument(option + " is empty; give the program to run, as in " + option + " mapper.py.");
    }
    const std::string& program = r.argv[0];
    // /usr/bin/python3 is the DataNodes' own, not a script to ship.
    const bool system_program = IsSystemPath(program) && env_.on_path(program);
    if (!system_program) {
      DFS_ASSIGN_OR_RETURN(r.program, Lookup(option, program));
      if (r.program) {
        staged_[*r.program].as_program = true;
        return r;
      }
      if (program.find('/') != std::string::npos || !env_.on_path(program)) return NotHere(option, program, true);
    }
    if (!IsInterpreter(program)) return r;
    std::optional<size_t> at = ScriptOperand(r.argv);
    if (!at) return r;
    const std::string& script = r.argv[*at];
    DFS_ASSIGN_OR_RETURN(r.script, Lookup(option, script));
    if (r.script) {
      staged_[*r.script].as_script = true;
      r.script_at = at;
    } else if (LooksLikeFile(script)) {
      return NotHere(option, script, false);
    }
    return r;
  }

  // The argv the tasks run: shipped programs as ./name, scripts by their
  // shipped name, a script without "#!" behind its interpreter.
  std::vector<std::string> Rewrite(const Resolved& c) const {
    std::vector<std::string> argv = c.argv;
    if (c.script) argv[*c.script_at] = staged_[*c.script].name;
    if (c.program) {
      const Staged& s = staged_[*c.program];
      if (!s.run_with.empty()) {
        argv[0] = s.name;
        argv.insert(argv.begin(), s.run_with);
      } else {
        argv[0] = "./" + s.name;
      }
    }
    return argv;
  }

  void CheckPartitionerConf() {
    if (args_.key_field_partitioner) return;
    for (const auto& [k, v] : args_.conf) {
      if (k == "mapreduce.partition.keypartitioner.options" || k == "mapred.text.key.partitioner.options") {
        Note("-D " + k + " has no effect without -partitioner org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner;" +
             " records go to reducers by their whole key.");
      }
    }
  }

  // Mends the content and decides the execute bit, noting each fix once.
  void Finish(Staged& s) {
    const std::string& who = s.local_path;
    const bool binary = IsBinary(s.content);
    const bool bom = StartsWith(s.content, kBom);
    const bool script = s.as_program || s.as_script || HasScriptExtension(s.name) ||
                        StartsWith(std::string_view(s.content).substr(bom ? kBom.size() : 0), "#!");
    const bool crlf = s.content.find("\r\n") != std::string::npos;
    if (!binary && script) {
      if (bom) {
        s.content.erase(0, kBom.size());
        Note(who +
             " starts with a UTF-8 byte order mark (BOM), which hides its first line from the system; "
             "removed it for the job. Save it as UTF-8 without BOM to silence this.");
      }
      if (crlf) {
        s.content = ReplaceCrlf(s.content);
        Note(who +
             " has Windows line endings (CRLF); converted to Unix (LF) for the job. Save it with LF endings "
             "to silence this.");
      }
    } else if (!binary && crlf) {
      Note(who + " has Windows line endings (CRLF); shipped as it is. A script reading it line by line sees a '\\r' " +
           "at the end of each line (in Python, strip it with line.rstrip('\\r\\n')).");
    }

    bool executable = s.locally_executable;
    if (s.as_program) {
      if (StartsWith(s.content, "#!")) {
        CheckShebang(s);
        executable = true;
      } else if (binary) {
        executable = true;
      } else if (std::string interp = InterpreterFor(s.name); !interp.empty()) {
        s.run_with = interp;
        Note(who + " has no '#!' line, so it cannot run by itself; running it as '" + interp + " " + s.name +
             "'. Make '#!/usr/bin/env " + interp + "' its first line to silence this.");
      } else {
        executable = true;
        Note(who +
             " has no '#!' line saying which program runs it; if it fails to start, make one its first "
             "line (e.g. '#!/bin/sh').");
      }
      if (executable && !s.locally_executable) {
        Note(who + " is not executable here; shipping it with the execute bit set. Run 'chmod +x " + who +
             "' to silence this.");
      }
    }
    s.executable = executable;
  }

  // The interpreter a "#!" line names cannot be checked on the DataNodes from
  // here, but one missing on this machine is likely missing there too.
  void CheckShebang(const Staged& s) {
    std::string_view content = s.content;
    std::string_view line = content.substr(
        2, content.find('\n') == std::string_view::npos ? std::string_view::npos : content.find('\n') - 2);
    std::vector<std::string> words = Words(line);
    if (words.empty()) {
      Note(s.local_path +
           " starts with an empty '#!' line; make it '#!/usr/bin/env python3' (or the program that "
           "runs it).");
      return;
    }
    const std::string shebang = "#!" + std::string(line);
    const std::string& interp = words[0];
    auto suggest = [](const std::string& prog) {
      return "#!/usr/bin/env " + (StartsWith(prog, "python") ? std::string("python3") : prog);
    };
    if (fs::path(interp).filename() == "env") {
      std::string prog;
      for (size_t i = 1; i < words.size() && prog.empty(); ++i) {
        if (words[i][0] != '-') prog = words[i];
      }
      if (!prog.empty() && !env_.on_path(prog)) {
        Note(s.local_path + " starts with '" + shebang + "', but there is no '" + prog +
             "' on PATH here; if the DataNodes lack it too, the task fails to start. Use '" + suggest(prog) +
             "' if that is what you mean.");
      }
      return;
    }
    const std::string base = fs::path(interp).filename().string();
    if (interp[0] != '/') {
      Note(s.local_path + " starts with '" + shebang + "', but a '#!' line needs a full path; use '" + suggest(base) +
           "'.");
    } else if (!env_.exists(interp)) {
      Note(s.local_path + " starts with '" + shebang + "', but there is no " + interp +
           " here; if the DataNodes lack it too, the task fails with 'No such file or directory'. Use '" +
           suggest(base) + "' instead.");
    }
  }

  const StreamingArgs& args_;
  const PreflightEnv& env_;
  std::vector<Staged> staged_;
  std::vector<std::string> notes_;
  uint64_t shipped_bytes_ = 0;
};

bool IsRegular(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

bool CanRun(const std::string& path) { return IsRegular(path) && ::access(path.c_str(), X_OK) == 0; }

}  // namespace

Result<PreflightResult> Preflight(const StreamingArgs& args, const PreflightEnv& env) {
  return Builder(args, env).Run();
}

PreflightEnv PreflightEnv::Local() {
  PreflightEnv env;
  env.read_file = [](const std::string& path) -> Result<std::string> {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return Status::IsADirectory(path + " is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::FromErrno("open " + path, errno);
    std::ostringstream out;
    out << in.rdbuf();
    if (in.bad()) return Status::IOError("read " + path + " failed");
    return out.str();
  };
  env.exists = [](const std::string& path) {
    std::error_code ec;
    return fs::exists(path, ec);
  };
  env.is_executable = [](const std::string& path) { return CanRun(path); };
  env.on_path = [](const std::string& program) {
    if (program.empty()) return false;
    if (program.find('/') != std::string::npos) return CanRun(program);
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::string dir = dirs.substr(start, end - start);
      if (CanRun((dir.empty() ? "." : dir) + "/" + program)) return true;
      start = end + 1;
    }
    return false;
  };
  env.file_size = [](const std::string& path) -> std::optional<uint64_t> {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return std::nullopt;
    uint64_t size = fs::file_size(path, ec);
    if (ec) return std::nullopt;
    return size;
  };
  return env;
}

}  // namespace dfs::cli

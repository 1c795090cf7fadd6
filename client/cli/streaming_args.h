// The command line of `dfs streaming`, read the way Hadoop streaming reads it.
//
//   dfs streaming -input in -output out -mapper mapper.py -reducer reducer.py
//                 -file mapper.py -file reducer.py
//
// Options take one dash and may come in any order; generic options (-D, -files)
// are accepted anywhere, not only first as Hadoop insists. Commands are split
// into argv here, Hadoop's way (whitespace, with '...' and "..." quoting), and
// never reach a shell. Parsing only reads the words: whether the files exist and
// what the scripts look like is the pre-flight's job (streaming_preflight.h),
// and the output directory and input globs are checked against the cluster by
// the command itself.
//
// Pure functions; no I/O; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace dfs::cli {

// The most reduce tasks a job may ask for. Hadoop has no hard limit, but every
// reduce fetches from every map, so a typo like -numReduceTasks 100000 would
// only ever swamp the cluster.
inline constexpr uint32_t kMaxReduceTasks = 10000;

// One command (-mapper, -reducer, -combiner) as typed and as split into argv.
struct StreamingCommand {
  std::string text;               // "python3 mapper.py --top 10"; empty: not given
  std::vector<std::string> argv;  // {"python3", "mapper.py", "--top", "10"}

  bool given() const { return !text.empty(); }
};

// A local file to ship to every task's working directory.
struct ShipRequest {
  std::string local_path;  // as the user typed it, "file://" removed
  std::string name;        // name in the working directory: base name, or the "#link" part of -files
  std::string option;      // "-file" or "-files", for messages
};

struct StreamingArgs {
  std::vector<std::string> inputs;  // every -input, comma lists split, in order
  std::string output;
  StreamingCommand mapper;
  StreamingCommand reducer;  // text "NONE": map-only, argv empty
  StreamingCommand combiner;
  std::vector<ShipRequest> files;  // -file and -files, in order given
  // Every -D, in order given, value split at the first '='.
  std::vector<std::pair<std::string, std::string>> conf;
  std::vector<std::pair<std::string, std::string>> cmdenv;  // -cmdenv K=V
  bool key_field_partitioner = false;                       // -partitioner ...KeyFieldBasedPartitioner

  // Resolved from -reducer NONE, -numReduceTasks, -D mapreduce.job.reduces and
  // -D mapred.reduce.tasks, in that order of precedence; 1 when none is given.
  // 0 means map-only.
  uint32_t num_reduces = 1;
  bool num_reduces_given = false;  // the user set it by one of those means
  // -D mapreduce.job.name, else -D mapred.job.name, else "streaming job".
  std::string job_name = "streaming job";

  bool overwrite = false;  // ours: replace an existing output directory
  bool verbose = false;
  bool background = false;  // ours: submit and return without waiting
  bool help = false;        // -help / -info: print StreamingUsage(), nothing else is checked

  bool map_only() const { return num_reduces == 0; }
};

// Reads the arguments after "streaming". InvalidArgument names the option at
// fault and says what to type instead (the closest known option for a typo);
// NotSupported for Hadoop options and classes this runner does not have.
Result<StreamingArgs> ParseStreamingArgs(const std::vector<std::string>& args);

// Splits a command into argv Hadoop's way: words separated by whitespace;
// '...' quotes literally, "..." quotes with \" and \\ escapes, and a backslash
// outside quotes escapes the next character. `option` ("-mapper") is for the
// messages: an unterminated quote, an empty command, or an unquoted shell
// operator (| ; && > <), which would reach the program as a plain argument
// because no shell runs the command.
Result<std::vector<std::string>> SplitCommand(const std::string& option, const std::string& text);

// The text of `dfs streaming -help`.
std::string StreamingUsage();

}  // namespace dfs::cli

// Hadoop-style command options: `-R`, `-skipTrash`, `-nl`, and combined
// single-letter flags such as `-Rh`.
//
// Why not CLI11: Hadoop's shell spells multi-letter options with one dash
// (`-skipTrash`, `-nl`, `-safemode`), which CLI11 reads as a bundle of short
// flags, and it stops at the first operand so that `-` (stdin) and the `stat`
// format stay operands. This parser does what Hadoop's CommandFormat does, plus
// bundles of known single-letter flags, which students type from habit.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dfs::cli {

class Flags {
 public:
  // Takes the options off the front of *args, leaving the operands. `spec` lists
  // the accepted flag names separated by spaces ("R h d", "f skipTrash"); a name
  // may start with '-' for a `--long` flag. Parsing stops at the first argument
  // that does not start with '-', at "-" itself, and after "--" (dropped).
  // An unknown option is an InvalidArgument: "Illegal option -x".
  static Result<Flags> Parse(std::string_view spec, std::vector<std::string>* args);

  bool Has(std::string_view name) const { return set_.count(std::string(name)) > 0; }
  size_t size() const { return set_.size(); }
  const std::set<std::string>& names() const { return set_; }

 private:
  std::set<std::string> set_;
};

}  // namespace dfs::cli

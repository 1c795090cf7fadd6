#include "client/cli/flags.h"

#include <algorithm>

namespace dfs::cli {

namespace {

std::vector<std::string> SplitSpec(std::string_view spec) {
  std::vector<std::string> names;
  size_t i = 0;
  while (i < spec.size()) {
    size_t j = spec.find(' ', i);
    if (j == std::string_view::npos) j = spec.size();
    if (j > i) names.emplace_back(spec.substr(i, j - i));
    i = j + 1;
  }
  return names;
}

}  // namespace

Result<Flags> Flags::Parse(std::string_view spec, std::vector<std::string>* args) {
  const std::vector<std::string> known = SplitSpec(spec);
  auto is_known = [&](std::string_view n) { return std::find(known.begin(), known.end(), n) != known.end(); };
  Flags flags;
  size_t pos = 0;
  for (; pos < args->size(); ++pos) {
    const std::string& a = (*args)[pos];
    if (a == "--") {
      ++pos;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    std::string name = a.substr(1);
    if (is_known(name)) {
      flags.set_.insert(name);
      continue;
    }
    bool bundle = name[0] != '-';
    for (char c : name) bundle = bundle && is_known(std::string(1, c));
    if (!bundle) return Status::InvalidArgument("Illegal option " + a);
    for (char c : name) flags.set_.insert(std::string(1, c));
  }
  args->erase(args->begin(), args->begin() + static_cast<std::ptrdiff_t>(pos));
  return flags;
}

}  // namespace dfs::cli

// A one-line progress bar on stderr for copies of big files (put, get, cp):
//   data.csv  [#######.............]  36%  180.0 MB / 500.0 MB  92.4 MB/s
// Drawn only when stderr is a terminal (Context::progress) and the copy is
// bigger than kProgressMinBytes, redrawn at most ten times a second, and
// erased when done so that it never ends up in logs or the next prompt.
// Used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dfs::cli {

struct Context;

inline constexpr uint64_t kProgressMinBytes = 16 << 20;

class Progress {
 public:
  Progress(Context& ctx, std::string label, uint64_t total);
  ~Progress() { Finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void Add(uint64_t bytes);
  // Erases the bar; further calls do nothing.
  void Finish();

 private:
  void Draw();

  Context& ctx_;
  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool active_;
  size_t drawn_chars_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace dfs::cli

#include "client/cli/progress.h"

#include <fmt/format.h>

#include <algorithm>
#include <ostream>

#include "client/cli/context.h"

namespace dfs::cli {

namespace {
constexpr double kMiB = 1024.0 * 1024.0;
constexpr size_t kBarWidth = 20;
constexpr size_t kMaxLabel = 30;
}  // namespace

Progress::Progress(Context& ctx, std::string label, uint64_t total)
    : ctx_(ctx), label_(std::move(label)), total_(total), active_(ctx.progress && total >= kProgressMinBytes) {
  if (label_.size() > kMaxLabel) label_ = "..." + label_.substr(label_.size() - (kMaxLabel - 3));
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::Add(uint64_t bytes) {
  if (!active_) return;
  done_ += bytes;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  Draw();
}

void Progress::Draw() {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ ? std::min(1.0, double(done_) / double(total_)) : 1.0;
  const size_t filled = static_cast<size_t>(frac * kBarWidth);
  std::string line =
      fmt::format("{}  [{}{}] {:3.0f}%  {:.1f} MB / {:.1f} MB  {:.1f} MB/s", label_, std::string(filled, '#'),
                  std::string(kBarWidth - filled, '.'), frac * 100, double(done_) / kMiB, double(total_) / kMiB,
                  secs > 0 ? double(done_) / kMiB / secs : 0.0);
  std::string pad(drawn_chars_ > line.size() ? drawn_chars_ - line.size() : 0, ' ');
  ctx_.err << '\r' << line << pad << std::flush;
  drawn_chars_ = line.size();
}

void Progress::Finish() {
  if (!active_) return;
  active_ = false;
  if (drawn_chars_ > 0) ctx_.err << '\r' << std::string(drawn_chars_, ' ') << '\r' << std::flush;
}

}  // namespace dfs::cli

#include "common/logging.h"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace dfs {

namespace {
std::mutex g_mu;
std::string g_pattern = "%Y-%m-%d %H:%M:%S.%e %^%L%$ [%n] %v";
spdlog::level::level_enum g_level = spdlog::level::info;
}  // namespace

void InitLogging(const std::string& level, const std::string& node_id) {
  std::lock_guard<std::mutex> l(g_mu);
  g_level = spdlog::level::from_str(level);
  g_pattern = "%Y-%m-%d %H:%M:%S.%e %^%L%$ " + node_id + " [%n] %v";
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& lg) {
    lg->set_pattern(g_pattern);
    lg->set_level(g_level);
  });
}

std::shared_ptr<spdlog::logger> Log(const std::string& module) {
  if (auto lg = spdlog::get(module)) return lg;
  std::lock_guard<std::mutex> l(g_mu);
  if (auto lg = spdlog::get(module)) return lg;
  auto lg = spdlog::stderr_color_mt(module);
  lg->set_pattern(g_pattern);
  lg->set_level(g_level);
  lg->flush_on(spdlog::level::warn);
  return lg;
}

}  // namespace dfs

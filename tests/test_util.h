// Small helpers shared by the Catch2 tests.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

// Fails the test with the Status's message when it is not OK.
#define REQUIRE_OK(expr)    \
  do {                      \
    auto _s = (expr);       \
    INFO(_s.ToString());    \
    REQUIRE(_s.ok());       \
  } while (0)

#define CHECK_CODE(expr, code_)                 \
  do {                                          \
    auto _s = (expr);                           \
    INFO(_s.ToString());                        \
    CHECK(_s.code() == ::dfs::StatusCode::code_); \
  } while (0)

namespace dfs::test {

// Sets (or, given nullptr, unsets) an environment variable of the test
// process, and restores it when it goes.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace dfs::test

// Small helpers shared by the Catch2 tests.
#pragma once

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

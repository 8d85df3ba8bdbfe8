// GoogleTest helpers that print the Status when a check fails.
#pragma once

#include <gtest/gtest.h>

#include "paddock/status.h"

namespace paddock::testing {

inline ::testing::AssertionResult IsOk(const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << s.ToString();
}
template <class T>
::testing::AssertionResult IsOk(const Result<T>& r) {
  return IsOk(r.status());
}

}  // namespace paddock::testing

#define ASSERT_OK(expr) ASSERT_TRUE(::paddock::testing::IsOk(expr))
#define EXPECT_OK(expr) EXPECT_TRUE(::paddock::testing::IsOk(expr))
#define EXPECT_CODE(expr, code_) EXPECT_EQ((expr).status().code(), ::paddock::StatusCode::code_) \
    << (expr).status().ToString()

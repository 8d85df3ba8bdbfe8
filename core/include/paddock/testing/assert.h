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

inline Status StatusOf(const Status& s) { return s; }
template <class T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace paddock::testing

#define ASSERT_OK(expr) ASSERT_TRUE(::paddock::testing::IsOk(expr))
#define EXPECT_OK(expr) EXPECT_TRUE(::paddock::testing::IsOk(expr))
// EXPECT_CODE(store->GetAgent("x"), kNotFound): the Status or Result has that code.
#define EXPECT_CODE(expr, code_)                                                         \
  do {                                                                                   \
    ::paddock::Status paddock_s_ = ::paddock::testing::StatusOf(expr);                   \
    EXPECT_EQ(paddock_s_.code(), ::paddock::StatusCode::code_) << paddock_s_.ToString(); \
  } while (false)

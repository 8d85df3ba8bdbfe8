// The SessionStore conformance suite. Every store plugin instantiates it through the real
// plugin loader:
//   INSTANTIATE_TEST_SUITE_P(Sqlite, paddock::testing::SessionStoreConformance,
//                            ::testing::Values(SessionStoreUnderTest{"sqlite", make}));
// The suite's tests live in tests/conformance/session_store_conformance.cpp, built as an
// OBJECT library so the linker keeps every one of them.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "paddock/session_store.h"
#include "paddock/testing/assert.h"

namespace paddock::testing {

struct SessionStoreUnderTest {
  std::string name;
  // A fresh, empty, started store for each test. The pointer keeps its library loaded.
  std::function<Result<std::shared_ptr<SessionStore>>()> make;
};

inline std::ostream& operator<<(std::ostream& os, const SessionStoreUnderTest& p) { return os << p.name; }

class SessionStoreConformance : public ::testing::TestWithParam<SessionStoreUnderTest> {
 protected:
  void SetUp() override {
    auto made = GetParam().make();
    ASSERT_OK(made);
    store_ = std::move(made).value();
  }
  void TearDown() override { store_.reset(); }

  std::shared_ptr<SessionStore> store_;
};

}  // namespace paddock::testing

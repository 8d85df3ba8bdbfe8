// The SandboxProvider conformance suite; instantiated by every sandbox plugin through the real
// plugin loader. Tests live in tests/conformance/sandbox_provider_conformance.cpp.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "paddock/sandbox_provider.h"
#include "paddock/testing/assert.h"

namespace paddock::testing {

struct SandboxProviderUnderTest {
  std::string name;
  // A fresh, started provider for each test. The pointer keeps its library loaded.
  std::function<Result<std::shared_ptr<SandboxProvider>>()> make;
};

inline std::ostream& operator<<(std::ostream& os, const SandboxProviderUnderTest& p) { return os << p.name; }

class SandboxProviderConformance : public ::testing::TestWithParam<SandboxProviderUnderTest> {
 protected:
  void SetUp() override {
    auto made = GetParam().make();
    ASSERT_OK(made);
    provider_ = std::move(made).value();
  }
  void TearDown() override { provider_.reset(); }

  std::shared_ptr<SandboxProvider> provider_;
};

}  // namespace paddock::testing

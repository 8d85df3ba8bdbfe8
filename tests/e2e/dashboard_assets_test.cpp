// The dashboard's files, served by `paddock serve` on its API port: from the side of a browser
// (caching, the page's Content-Security-Policy) and of someone probing for other files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

class DashboardAssetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    site_ = dir_.path() + "/dashboard";
    fs::create_directories(site_ + "/assets");
    std::ofstream(site_ + "/index.html")
        << "<!doctype html><script src=\"/assets/app.3f9a1c2e.js\"></script>";
    std::ofstream(site_ + "/assets/app.3f9a1c2e.js") << "console.log('dashboard');";
    std::ofstream(site_ + "/assets/app.77b0d4e1.css") << "body{margin:0}";
    std::ofstream(dir_.path() + "/secret.txt") << "not for the web";
    ServerOptions o;
    o.server_toml = "dashboard_dir = \"" + site_ + "\"\n";
    server_ = std::make_unique<ServerProcess>(o);
    ASSERT_OK(server_->Start());
  }
  HttpResponse Get(const std::string& path, std::map<std::string, std::string> headers = {}) {
    headers["Authorization"] = "";  // a browser's first request carries no key
    return server_->Request("GET", path, "", "", headers);
  }

  TempDir dir_;
  std::string site_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(DashboardAssetsTest, ThePageIsNeverCachedAndForbidsInlineCodeAndAssetsAreCachedForAYear) {
  auto page = Get("/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.headers["Content-Type"].rfind("text/html", 0), 0u) << page.headers["Content-Type"];
  EXPECT_NE(page.body.find("/assets/app.3f9a1c2e.js"), std::string::npos);
  EXPECT_EQ(page.headers["Cache-Control"], "no-cache");
  const std::string csp = page.headers["Content-Security-Policy"];
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
  EXPECT_EQ(page.headers["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(Get("/index.html").body, page.body);

  auto js = Get("/assets/app.3f9a1c2e.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.body, "console.log('dashboard');");
  EXPECT_EQ(js.headers["Content-Type"].rfind("text/javascript", 0), 0u) << js.headers["Content-Type"];
  EXPECT_EQ(js.headers["Cache-Control"], "public, max-age=31536000, immutable");
  EXPECT_EQ(Get("/assets/app.77b0d4e1.css").headers["Content-Type"].rfind("text/css", 0), 0u);
  // What the browser has already: 304, no body.
  auto again = Get("/assets/app.3f9a1c2e.js", {{"If-None-Match", js.headers["ETag"]}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(Get("/", {{"If-None-Match", page.headers["ETag"]}}).status, 304);
  // The API beside it is untouched: still keyed.
  EXPECT_EQ(Get("/api/sessions").status, 401);
}

TEST_F(DashboardAssetsTest, OnlyTheFilesOfTheBuildAreServedWhateverThePath) {
  for (const char* path :
       {"/assets/../secret.txt", "/assets/%2e%2e/secret.txt", "/assets/%2e%2e%2fsecret.txt", "/../secret.txt",
        "/assets/", "/assets/app.js", "/assets//app.3f9a1c2e.js", "/assets/app.3f9a1c2e.js/", "/secret.txt",
        "/assets/..%2f..%2fsecret.txt", "/assets/app.3f9a1c2e.js%00.css"}) {
    auto r = Get(path);
    EXPECT_NE(r.status, 200) << path;
    EXPECT_EQ(r.body.find("not for the web"), std::string::npos) << path;
    EXPECT_EQ(r.body.find("console.log"), std::string::npos) << path;
  }
  // A file added after the start is not served either: the build is read once.
  std::ofstream(site_ + "/assets/late.js") << "late";
  EXPECT_EQ(Get("/assets/late.js").status, 404);
  // Only GET.
  auto post = server_->Request("POST", "/", "{}", "application/json", {{"Authorization", ""}});
  EXPECT_EQ(post.status, 405) << post.body;
  EXPECT_EQ(post.headers["Allow"], "GET");
}

TEST(DashboardAssetsMissing, WithoutABuildThePageSaysHowToGetOne) {
  TempDir dir;
  ServerOptions o;
  o.server_toml = "dashboard_dir = \"" + dir.path() + "/nothing-here\"\n";
  ServerProcess server(o);
  ASSERT_OK(server.Start());
  auto r = server.Request("GET", "/", "", "", {{"Authorization", ""}});
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(JsonField(r.body, "error.message").find("the dashboard is not installed"), std::string::npos)
      << r.body;
}

}  // namespace
}  // namespace paddock::testing

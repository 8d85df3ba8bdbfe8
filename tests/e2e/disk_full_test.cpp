// The bad day of a full disk: the data directory lives on a small loop-mounted ext4, which a
// filler file then fills. Writes get 507 with a message a person can act on, the server keeps
// answering, nothing acknowledged is lost, and everything works again once space returns.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "api_fixture.h"
#include "paddock/process.h"

namespace paddock::testing {
namespace {

// A small ext4 image mounted at `at` for the life of the object.
class SmallDisk {
 public:
  SmallDisk(const std::string& image, const std::string& at, const std::string& size) : at_(at) {
    std::error_code ec;
    std::filesystem::create_directories(at, ec);
    ok_ = Run({"truncate", "-s", size, image}) && Run({"mkfs.ext4", "-q", "-F", "-m", "0", image}) &&
          Run({"mount", "-o", "loop", image, at});
    mounted_ = ok_;
  }
  ~SmallDisk() {
    if (mounted_) umount2(at_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }

 private:
  static bool Run(std::vector<std::string> argv) {
    process::ChildSpec spec;
    argv[0] = process::FindExecutable(argv[0]).value_or(argv[0]);
    spec.argv = std::move(argv);
    spec.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    Result<ExecResult> r = process::RunAndStream(spec, {}, [](ExecStream, std::string_view) {});
    return r.ok() && r->exit_code == 0;
  }
  std::string at_;
  bool ok_ = false;
  bool mounted_ = false;
};

// Writes `path` until the filesystem has no byte left.
void Fill(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << strerror(errno);
  std::string block(1 << 20, 'f');
  for (size_t size = block.size(); size > 0; size /= 2) {
    while (write(fd, block.data(), size) == static_cast<ssize_t>(size)) {
    }
  }
  EXPECT_EQ(errno, ENOSPC);
  fsync(fd);
  close(fd);
  struct statvfs st {};
  ASSERT_EQ(statvfs(path.c_str(), &st), 0);
  EXPECT_EQ(st.f_bavail, 0u) << "the filesystem still has room";
}

class DiskFull : public Api {
 protected:
  void SetUp() override {}  // the server starts once its data directory is mounted
  // run id -> status, of the session's newest 1000 runs.
  std::map<std::string, std::string> Runs(const std::string& session) {
    HttpResponse r = server_->Request("GET", "/api/sessions/" + session + "/runs?limit=1000");
    EXPECT_EQ(r.status, 200) << r.body;
    std::map<std::string, std::string> out;
    Poco::JSON::Array::Ptr runs =
        Poco::JSON::Parser().parse(r.body).extract<Poco::JSON::Object::Ptr>()->getArray("runs");
    for (size_t i = 0; runs && i < runs->size(); ++i) {
      Poco::JSON::Object::Ptr run = runs->getObject(static_cast<unsigned>(i));
      out[run->getValue<std::string>("id")] = run->getValue<std::string>("status");
    }
    return out;
  }
};

TEST_F(DiskFull, WritesFailWith507AndNothingAcknowledgedIsLostAndAllRecoversWhenSpaceReturns) {
  ASSERT_EQ(geteuid(), 0u) << "this test mounts a loop device (run as root, as CI does)";
  TempDir sandboxes;  // the workspaces live elsewhere: only the store's disk fills
  ASSERT_EQ(chmod(sandboxes.path().c_str(), 0755), 0);
  ServerOptions options;
  options.sandbox_toml =
      "[sandbox]\ntype = \"process\"\n[sandbox.config]\ndestroy_on_stop = true\nroot = \"" +
      sandboxes.path() + "\"\n";
  options.extra_toml = "[profiles.default]\nwarm = 0\n";
  server_ = std::make_unique<ServerProcess>(options);
  TempDir image_dir;
  SmallDisk disk(image_dir / "data.img", server_->data_dir(), "24M");
  ASSERT_TRUE(disk.ok()) << "cannot make and mount a small ext4 image";
  ASSERT_OK(server_->Start());

  const std::string agent = CreateAgent();
  const std::string session = CreateSession(agent);
  Send(session, "echo before the disk filled");
  const std::vector<SseEvent> before = UntilFinished(session, 1);
  ASSERT_TRUE(HasOutput(before, "before the disk filled"));

  const std::string filler = server_->data_dir() + "/filler";
  Fill(filler);

  // Messages until the store refuses one: each acknowledged one must survive.
  std::vector<std::string> acknowledged;
  HttpResponse refused;
  const std::string big(4096, 'x');
  for (int i = 0; i < 900 && refused.status == 0; ++i) {
    Poco::JSON::Object body;
    body.set("content", "echo " + big);
    body.set("on_busy", "queue");
    std::ostringstream ss;
    body.stringify(ss);
    HttpResponse r = server_->Request("POST", "/api/sessions/" + session + "/messages", ss.str());
    if (r.status == 202) {
      acknowledged.push_back(JsonField(r.body, "run_id"));
    } else {
      refused = r;
    }
  }
  ExpectError(refused, 507, "insufficient_storage", "disk under the data directory is full");
  EXPECT_EQ(refused.headers["Retry-After"], "30");

  // Creating things fails the same way, and reading still works.
  ExpectError(server_->Request("POST", "/api/agents", R"({"name":"more","harness":"shell"})"), 507,
              "insufficient_storage", "free space there and retry");
  EXPECT_EQ(server_->Request("GET", "/healthz").status, 200);
  HttpResponse events = server_->Request("GET", "/api/sessions/" + session + "/events?after=0");
  ASSERT_EQ(events.status, 200) << events.body;
  for (const SseEvent& e : before) {
    EXPECT_NE(events.body.find("\"seq\":" + std::to_string(e.id) + ","), std::string::npos)
        << "event " << e.id << " (" << e.type << ") is gone";
  }

  // Space returns: everything acknowledged is there, and new work runs to the end.
  ASSERT_EQ(unlink(filler.c_str()), 0);
  const std::map<std::string, std::string> runs = Runs(session);
  for (const std::string& run : acknowledged)
    EXPECT_TRUE(runs.count(run)) << "acknowledged run " << run << " is gone";
  const std::string last = Send(session, "echo after the disk filled");
  std::vector<SseEvent> after =
      ReadStream(server_->port(), "/api/sessions/" + session + "/events/stream", {},
                 [&](const std::vector<SseEvent>& ev) {
                   for (const auto& e : ev) {
                     if (e.type == "run.finished" && JsonField(e.data, "run_id") == last) return true;
                   }
                   return false;
                 });
  EXPECT_TRUE(HasOutput(after, "after the disk filled"));
  std::set<std::int64_t> seqs;
  for (const SseEvent& e : after) EXPECT_TRUE(seqs.insert(e.id).second) << "seq " << e.id << " twice";
  EXPECT_EQ(server_->Request("POST", "/api/agents", R"({"name":"more","harness":"shell"})").status, 201);

  // And the store opens again from what is on disk.
  EXPECT_EQ(server_->Stop(), 0) << server_->log();
  ASSERT_OK(server_->Start());
  EXPECT_EQ(Runs(session)[last], "succeeded");
}

}  // namespace
}  // namespace paddock::testing

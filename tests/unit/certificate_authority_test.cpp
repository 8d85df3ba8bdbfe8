// The egress CA from the side of the clients that must accept its certificates (OpenSSL,
// GnuTLS, Node — each checks the chain its own way; GnuTLS compares issuer names by their
// encoding) and of whoever finds its files: the key is 0600 and refused when open to others, a
// file that is not a CA is refused with what to do, rotation makes another CA.
#include "services/vault/certificate_authority.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The exit status of a command, with its output for the failure message.
std::pair<int, std::string> Check(const std::vector<std::string>& argv) { return RunCommand(argv); }

TEST(CertificateAuthority, ItsCertificatesVerifyInOpenSslGnuTlsAndNodeForTheirHostOnly) {
  TempDir dir;
  const std::string ca_dir = dir.path() + "/egress-ca";
  auto ca = CertificateAuthority::LoadOrCreate(ca_dir, "test");
  ASSERT_OK(ca);
  struct stat st {};
  ASSERT_EQ(stat((ca_dir + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(ca_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_NE((*ca)->certificate_pem().find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ((*ca)->certificate_pem().find("PRIVATE KEY"), std::string::npos);

  for (const std::string host : {"api.example.com", "127.0.0.1", "::1"}) {
    auto leaf = (*ca)->Issue(host);
    ASSERT_OK(leaf);
    const std::string chain = dir.path() + "/chain.pem";
    Write(chain, leaf->certificate_pem);
    const bool ip = host.find_first_not_of("0123456789.:") == std::string::npos;
    // OpenSSL: the chain to the CA, for a TLS server, for this host.
    auto openssl = Check({"openssl", "verify", "-CAfile", (*ca)->certificate_file(), "-purpose", "sslserver",
                          ip ? "-verify_ip" : "-verify_hostname", host, chain});
    EXPECT_EQ(openssl.first, 0) << host << ": " << openssl.second;
    auto other =
        Check({"openssl", "verify", "-CAfile", (*ca)->certificate_file(),
               ip ? "-verify_ip" : "-verify_hostname", ip ? "10.9.8.7" : "other.example.com", chain});
    EXPECT_NE(other.first, 0) << host << " verified for another host";
    // GnuTLS.
    auto gnutls =
        Check({"certtool", "--verify", "--load-ca-certificate", (*ca)->certificate_file(),
               "--verify-hostname", host, "--verify-purpose", "1.3.6.1.5.5.7.3.1", "--infile", chain});
    EXPECT_EQ(gnutls.first, 0) << host << ": " << gnutls.second;
    auto gnutls_other = Check({"certtool", "--verify", "--load-ca-certificate", (*ca)->certificate_file(),
                               "--verify-hostname", "other.example.com", "--infile", chain});
    EXPECT_NE(gnutls_other.first, 0) << host << " verified by GnuTLS for another host";
    // Node: the leaf signed by the CA's key, issued by its subject, for this host.
    const std::string script =
        "const {X509Certificate}=require('crypto');const fs=require('fs');"
        "const pem=fs.readFileSync(process.argv[1],'utf8');"
        "const leaf=new X509Certificate(pem.split(/(?=-----BEGIN)/)[0]);"
        "const ca=new X509Certificate(fs.readFileSync(process.argv[2]));"
        "const h=process.argv[3];const ip=process.argv[4]==='ip';"
        "const mine=ip?leaf.checkIP(h):leaf.checkHost(h);"
        "const theirs=ip?leaf.checkIP('10.9.8.7'):leaf.checkHost('other.example.com');"
        "process.exit(leaf.verify(ca.publicKey)&&leaf.checkIssued(ca)&&ca.ca&&!leaf.ca&&"
        "mine!==undefined&&theirs===undefined?0:1)";
    auto node = Check({"node", "-e", script, chain, (*ca)->certificate_file(), host, ip ? "ip" : "dns"});
    EXPECT_EQ(node.first, 0) << host << ": " << node.second;
  }
  // Kept per host: the same certificate twice, another for another host.
  EXPECT_EQ((*ca)->Issue("api.example.com")->certificate_pem,
            (*ca)->Issue("API.example.com")->certificate_pem);
  EXPECT_NE((*ca)->Issue("api.example.com")->certificate_pem, (*ca)->Issue("b.example.com")->certificate_pem);
  for (const char* bad : {"", "-a.example.com", "a..b", "a b", "host/path", "a.example.com-"}) {
    SCOPED_TRACE(bad);
    EXPECT_CODE((*ca)->Issue(bad), kInvalidArgument);
  }
}

TEST(CertificateAuthority, ARestartKeepsTheCaRotationMakesAnotherAndBadFilesAreRefused) {
  TempDir dir;
  const std::string ca_dir = dir.path() + "/egress-ca";
  std::string fingerprint;
  {
    auto ca = CertificateAuthority::LoadOrCreate(ca_dir, "test");
    ASSERT_OK(ca);
    fingerprint = (*ca)->fingerprint();
    EXPECT_EQ(fingerprint.size(), 64u);
  }
  auto again = CertificateAuthority::LoadOrCreate(ca_dir, "test");
  ASSERT_OK(again);
  EXPECT_EQ((*again)->fingerprint(), fingerprint);
  auto before = (*again)->Issue("api.example.com");
  ASSERT_OK(before);
  ASSERT_OK((*again)->Rotate());
  EXPECT_NE((*again)->fingerprint(), fingerprint);
  // The old leaf no longer verifies against the new CA; a new one does.
  const std::string chain = dir.path() + "/chain.pem";
  Write(chain,
        before->certificate_pem.substr(0, before->certificate_pem.find("-----END CERTIFICATE-----") + 26));
  EXPECT_NE(Check({"openssl", "verify", "-CAfile", (*again)->certificate_file(), chain}).first, 0);
  Write(chain, (*again)->Issue("api.example.com")->certificate_pem);
  EXPECT_EQ(Check({"openssl", "verify", "-CAfile", (*again)->certificate_file(), chain}).first, 0);
  auto reloaded = CertificateAuthority::LoadOrCreate(ca_dir, "test");
  ASSERT_OK(reloaded);
  EXPECT_EQ((*reloaded)->fingerprint(), (*again)->fingerprint());

  // A key file open to others is refused, naming it.
  chmod((ca_dir + "/ca.key").c_str(), 0644);
  auto open = CertificateAuthority::LoadOrCreate(ca_dir, "test");
  EXPECT_CODE(open, kFailedPrecondition);
  EXPECT_NE(open.status().message().find("chmod 600"), std::string::npos) << open.status().message();
  // A file that is not a key and its certificate: refused, saying what to do.
  Write(ca_dir + "/ca.key", "not a key\n");
  chmod((ca_dir + "/ca.key").c_str(), 0600);
  auto broken = CertificateAuthority::LoadOrCreate(ca_dir, "test");
  EXPECT_CODE(broken, kFailedPrecondition);
  EXPECT_NE(broken.status().message().find("move it away"), std::string::npos) << broken.status().message();
  // Another CA's certificate beside this key.
  TempDir other;
  auto other_ca = CertificateAuthority::LoadOrCreate(other.path() + "/ca", "other");
  ASSERT_OK(other_ca);
  std::ifstream in(other.path() + "/ca/ca.key");
  std::stringstream other_text;
  other_text << in.rdbuf();
  const std::string mixed = other_text.str();
  const size_t cert_at = mixed.find("-----BEGIN CERTIFICATE-----");
  Write(ca_dir + "/ca.key", mixed.substr(0, cert_at) + (*reloaded)->certificate_pem());
  EXPECT_CODE(CertificateAuthority::LoadOrCreate(ca_dir, "test"), kFailedPrecondition);
}

TEST(CertificateAuthority, AnotherProcessFollowsARotationAndIssuesFromTheNewCa) {
  TempDir dir;
  const std::string ca_dir = dir.path() + "/ca";
  auto server = CertificateAuthority::LoadOrCreate(ca_dir, "test");
  ASSERT_OK(server);
  auto before = (*server)->Issue("api.example.com");
  ASSERT_OK(before);
  EXPECT_EQ((*server)->ReloadIfChanged().value(), false);  // nothing happened
  auto rotator = CertificateAuthority::LoadOrCreate(ca_dir, "test");
  ASSERT_OK(rotator);
  ASSERT_OK((*rotator)->Rotate());
  ASSERT_NE((*rotator)->fingerprint(), (*server)->fingerprint());
  EXPECT_EQ((*server)->ReloadIfChanged().value(), true);
  EXPECT_EQ((*server)->fingerprint(), (*rotator)->fingerprint());
  EXPECT_EQ((*server)->ReloadIfChanged().value(), false);
  // What it issued under the old CA is forgotten: the host's certificate is of the new one.
  auto after = (*server)->Issue("api.example.com");
  ASSERT_OK(after);
  EXPECT_NE(after->certificate_pem, before->certificate_pem);
  EXPECT_NE(after->certificate_pem.find((*server)->certificate_pem()), std::string::npos);
}

}  // namespace
}  // namespace paddock::testing

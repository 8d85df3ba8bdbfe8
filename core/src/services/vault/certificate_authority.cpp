#include "services/vault/certificate_authority.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace paddock {
namespace {

using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Cert = std::unique_ptr<X509, decltype(&X509_free)>;
using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

constexpr long kSkewS = 3600;  // valid from an hour ago: clocks of clients disagree

Status OpenSslError(const std::string& what) {
  char buf[256] = "unknown error";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return Status::Internal(what + ": " + buf);
}

Pkey NewKey() { return Pkey(EVP_EC_gen("P-256"), EVP_PKEY_free); }

std::string ToPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string ToPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) return "";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// `value` as extension `nid` of `cert`, issued by `issuer` (for the key identifiers).
bool AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// 128 random bits, positive.
bool SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  if (!bn) return false;
  const bool ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  return ok;
}

bool SetValidity(X509* cert, long days) {
  return X509_gmtime_adj(X509_getm_notBefore(cert), -kSkewS) &&
         X509_gmtime_adj(X509_getm_notAfter(cert), days * 86400L);
}

// Writes `text` to `path` through a temporary file and a rename: a crash leaves the old file or
// the new one, never half of one.
Status WriteAtomically(const std::string& path, const std::string& text, mode_t mode) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Status::FailedPrecondition("cannot write " + tmp + ": " + strerror(errno));
  bool ok = fchmod(fd, mode) == 0 &&
            write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = strerror(errno);
    unlink(tmp.c_str());
    return Status::FailedPrecondition("cannot write " + path + ": " + why);
  }
  return Status::Ok();
}

// A DNS name of letters, digits and '-' labels (lower-cased), or an IPv4/IPv6 address.
bool NormalHost(std::string& host, bool& is_ip) {
  unsigned char buf[16];
  is_ip = inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
  if (is_ip) return true;
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    char& c = host[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '.') {
      if (label == 0 || host[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    if (c == '-' && label == 0) return false;
    if (++label > 63) return false;
  }
  return label > 0 && host.back() != '-';
}

// The identity of the file at `path` ("" when it cannot be read): a rotation renames a new
// file over it, so its inode changes even within one clock tick.
std::string FileIdentity(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_ino) + "." + std::to_string(st.st_size) + "." +
         std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec);
}

}  // namespace

struct CertificateAuthority::Keys {
  Pkey key{nullptr, EVP_PKEY_free};
  Cert cert{nullptr, X509_free};
};

CertificateAuthority::CertificateAuthority(std::string dir, std::string name)
    : dir_(std::move(dir)), name_(std::move(name)) {}

CertificateAuthority::~CertificateAuthority() = default;

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::LoadOrCreate(const std::string& dir,
                                                                                 const std::string& name) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::FailedPrecondition("cannot make " + dir + ": " + strerror(errno));
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority(dir, name));
  struct stat st {};
  if (stat((dir + "/ca.key").c_str(), &st) == 0) {
    PADDOCK_RETURN_IF_ERROR(ca->Load());
  } else if (errno == ENOENT) {
    PADDOCK_RETURN_IF_ERROR(ca->MakeNew());
  } else {
    return Status::FailedPrecondition("cannot read " + dir + "/ca.key: " + strerror(errno));
  }
  return ca;
}

Status CertificateAuthority::MakeNew() {
  auto keys = std::make_unique<Keys>();
  keys->key = NewKey();
  keys->cert = Cert(X509_new(), X509_free);
  X509* c = keys->cert.get();
  if (!keys->key || !c) return OpenSslError("making the egress CA key");
  X509_NAME* subject = X509_get_subject_name(c);
  const std::string cn = ("Paddock egress CA " + name_).substr(0, 64);
  bool ok = X509_set_version(c, 2) == 1 && SetRandomSerial(c) && SetValidity(c, kCaDays) &&
            X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>("Paddock"), -1, -1, 0) == 1 &&
            X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1 &&
            X509_set_issuer_name(c, subject) == 1 && X509_set_pubkey(c, keys->key.get()) == 1 &&
            AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
            AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") &&
            AddExtension(c, c, NID_subject_key_identifier, "hash") &&
            AddExtension(c, c, NID_authority_key_identifier, "keyid:always") &&
            X509_sign(c, keys->key.get(), EVP_sha256()) > 0;
  if (!ok) return OpenSslError("making the egress CA certificate");
  // One file holds both, so a crash cannot leave a key of one CA beside another's certificate;
  // ca.crt is the certificate alone, for sandboxes.
  PADDOCK_RETURN_IF_ERROR(WriteAtomically(dir_ + "/ca.key", ToPem(keys->key.get()) + ToPem(c), 0600));
  PADDOCK_RETURN_IF_ERROR(WriteAtomically(dir_ + "/ca.crt", ToPem(c), 0644));
  std::lock_guard lock(mu_);
  keys_ = std::move(keys);
  issued_.clear();
  loaded_ = FileIdentity(dir_ + "/ca.key");
  return Status::Ok();
}

Status CertificateAuthority::Load() {
  const std::string path = dir_ + "/ca.key";
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return Status::FailedPrecondition("cannot read " + path + ": " + strerror(errno));
  // Group-read is allowed: a Kubernetes Secret mounted with fsGroup is 0440 root:<fsGroup>.
  if ((st.st_mode & 027) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::FailedPrecondition(path + " is open to others (mode " + mode + "); chmod 600 it");
  }
  const std::string identity = FileIdentity(path);  // before reading: a rename after it is seen next time
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string pem = text.str();
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  auto keys = std::make_unique<Keys>();
  keys->key = Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  keys->cert = Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  ERR_clear_error();
  if (!keys->key || !keys->cert || X509_check_private_key(keys->cert.get(), keys->key.get()) != 1) {
    ERR_clear_error();
    return Status::FailedPrecondition(
        path +
        " does not hold a private key and its CA certificate; move it away to make "
        "a new CA (sandboxes then trust the new one)");
  }
  // ca.crt follows ca.key; written only when it differs, so a read-only directory (a
  // Kubernetes Secret holding both) loads.
  const std::string cert_pem = ToPem(keys->cert.get());
  std::ifstream current(dir_ + "/ca.crt");
  std::stringstream current_text;
  current_text << current.rdbuf();
  if (current_text.str() != cert_pem)
    PADDOCK_RETURN_IF_ERROR(WriteAtomically(dir_ + "/ca.crt", cert_pem, 0644));
  std::lock_guard lock(mu_);
  keys_ = std::move(keys);
  issued_.clear();
  loaded_ = identity;
  return Status::Ok();
}

Status CertificateAuthority::Rotate() { return MakeNew(); }

Result<bool> CertificateAuthority::ReloadIfChanged() {
  const std::string now = FileIdentity(dir_ + "/ca.key");
  {
    std::lock_guard lock(mu_);
    if (now.empty() || now == loaded_) return false;
  }
  PADDOCK_RETURN_IF_ERROR(Load());
  return true;
}

std::string CertificateAuthority::certificate_pem() const {
  std::lock_guard lock(mu_);
  return ToPem(keys_->cert.get());
}

std::string CertificateAuthority::certificate_file() const { return dir_ + "/ca.crt"; }

std::string CertificateAuthority::fingerprint() const {
  std::lock_guard lock(mu_);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(keys_->cert.get(), EVP_sha256(), md, &n) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

Result<IssuedCertificate> CertificateAuthority::Issue(const std::string& requested) {
  std::string host = requested;
  bool is_ip = false;
  if (!NormalHost(host, is_ip)) {
    return Status::InvalidArgument("'" + requested.substr(0, 64) + "' is not a host name or an IP address");
  }
  std::lock_guard lock(mu_);
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  if (auto it = issued_.find(host); it != issued_.end() && it->second.not_after_s - now > 86400)
    return it->second;
  Pkey key = NewKey();
  Cert cert(X509_new(), X509_free);
  X509* c = cert.get();
  X509* ca = keys_->cert.get();
  if (!key || !c) return OpenSslError("making a certificate for " + host);
  X509_NAME* subject = X509_get_subject_name(c);
  const std::string san = (is_ip ? "IP:" : "DNS:") + host;
  bool ok = X509_set_version(c, 2) == 1 && SetRandomSerial(c) && SetValidity(c, kLeafDays) &&
            (host.size() > 64 || X509_NAME_add_entry_by_txt(
                                     subject, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0) == 1) &&
            // The CA's subject as it is encoded, not rebuilt: strict clients compare bytes.
            X509_set_issuer_name(c, X509_get_subject_name(ca)) == 1 && X509_set_pubkey(c, key.get()) == 1 &&
            AddExtension(c, ca, NID_basic_constraints, "critical,CA:FALSE") &&
            AddExtension(c, ca, NID_key_usage, "critical,digitalSignature") &&
            AddExtension(c, ca, NID_ext_key_usage, "serverAuth") &&
            AddExtension(c, ca, NID_subject_alt_name, san.c_str()) &&
            AddExtension(c, ca, NID_subject_key_identifier, "hash") &&
            AddExtension(c, ca, NID_authority_key_identifier, "keyid:always") &&
            X509_sign(c, keys_->key.get(), EVP_sha256()) > 0;
  if (!ok) return OpenSslError("making a certificate for " + host);
  IssuedCertificate out{ToPem(c) + ToPem(ca), ToPem(key.get()), now + kLeafDays * 86400L};
  issued_[host] = out;
  return out;
}

}  // namespace paddock

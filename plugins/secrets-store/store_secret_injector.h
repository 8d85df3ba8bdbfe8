// StoreSecretInjector: team secrets sealed with AES-256-GCM and kept in Paddock's own store
// (SessionStore::PutSealedSecret and the rest), so every process of an install sees the same
// ones. The keys come from a file or an environment variable; each value records the key it
// was sealed with, so keys can be rotated while servers run.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "paddock/secret_injector.h"
#include "paddock/session_store.h"
#include "sealer.h"

namespace paddock::plugins::secrets_store {

struct KeySource {
  std::string file;       // the keyring file; empty: `env_text`
  std::string env_name;   // for messages
  std::string env_text;   // the variable's value, when no file
  bool generate = false;  // make `file` with a new key when it does not exist
};

class StoreSecretInjector final : public SecretInjector, public TeamSecrets {
 public:
  explicit StoreSecretInjector(KeySource source) : source_(std::move(source)) {}

  void UseStore(SessionStore& store) noexcept override { store_ = &store; }
  Status Start() noexcept override;
  Health GetHealth() const noexcept override;

  Result<std::vector<Secret>> Resolve(const SecretScope& scope) noexcept override;
  TeamSecrets* team_secrets() noexcept override { return this; }

  Result<SecretInfo> Set(std::string_view team_id, std::string_view name, std::string_view value,
                         const VaultBinding& vault) noexcept override;
  Result<std::vector<SecretInfo>> List(std::string_view team_id) noexcept override;
  Status Delete(std::string_view team_id, std::string_view name) noexcept override;
  // With a keyring file: a new key goes first in it (the old ones stay, for values not
  // re-encrypted yet and for servers that have not re-read it); then every value not under
  // the current key is re-encrypted.
  Result<std::int64_t> Rotate() noexcept override;

  // The current key's id (after Start).
  std::string current_key_id() const;

 private:
  using Keys = std::shared_ptr<const std::vector<SecretKey>>;
  // The keyring, re-read when its file changed since the last read.
  Result<Keys> CurrentKeys();
  Status LoadLocked();
  // The key `id`, re-reading the keyring once when it is not known (another process rotated).
  Result<SecretKey> KeyFor(const std::string& id, const SealedSecret& s);
  Status WriteKeyring(const std::vector<SecretKey>& keys);

  KeySource source_;
  SessionStore* store_ = nullptr;
  mutable std::mutex mu_;
  Keys keys_;
  // What the key file was when last read: a rotation renames a new file into place (a new
  // inode), and an edit in place changes the size or times; mtime alone can repeat within a tick.
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    struct timespec mtime {};
    struct timespec ctime {};
    bool operator==(const FileStamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
             ctime.tv_nsec == o.ctime.tv_nsec;
    }
  };
  static FileStamp StampOf(const struct stat& st) {
    return FileStamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
  }
  FileStamp stamp_;
};

}  // namespace paddock::plugins::secrets_store

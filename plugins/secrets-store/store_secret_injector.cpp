#include "store_secret_injector.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "paddock/vault.h"

namespace paddock::plugins::secrets_store {
namespace {

SecretInfo InfoOf(const SealedSecret& s) {
  SecretInfo info{s.team_id, s.name, s.version, s.created_at, s.updated_at, {}};
  if (std::optional<std::string> text = BindingOf(s.sealed); text && !text->empty()) {
    if (std::optional<VaultBinding> b = DecodeVaultBinding(*text)) info.vault = std::move(*b);
  }
  return info;
}

TimestampMs Now() { return NowMs(); }

}  // namespace

Status StoreSecretInjector::LoadLocked() {
  std::string text;
  std::string where;
  if (source_.file.empty()) {
    if (source_.env_text.empty()) {
      return Status::FailedPrecondition("secrets.store has no key: set $" + source_.env_name +
                                        " (e.g. `openssl rand -base64 32`) or key_file");
    }
    text = source_.env_text;
    where = "$" + source_.env_name;
  } else {
    struct stat st {};
    if (stat(source_.file.c_str(), &st) != 0) {
      if (errno == ENOENT && source_.generate) {
        PADDOCK_RETURN_IF_ERROR(WriteKeyring({GenerateKey()}));
        if (stat(source_.file.c_str(), &st) != 0)
          return Status::Internal("cannot stat " + source_.file + ": " + strerror(errno));
      } else {
        return Status::FailedPrecondition("secrets.store key_file " + source_.file + ": " + strerror(errno));
      }
    }
    std::ifstream in(source_.file);
    if (!in) return Status::FailedPrecondition("secrets.store cannot read " + source_.file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    where = source_.file;
    stamp_ = StampOf(st);
  }
  PADDOCK_ASSIGN_OR_RETURN(std::vector<SecretKey> keys, ParseKeyring(text, where));
  keys_ = std::make_shared<const std::vector<SecretKey>>(std::move(keys));
  return Status::Ok();
}

Status StoreSecretInjector::WriteKeyring(const std::vector<SecretKey>& keys) {
  std::string text =
      "# Paddock team secret keys (secrets.store): the first is current; the others open values\n"
      "# sealed before a rotation. Keep this file as safe as the database's backups.\n";
  for (const SecretKey& k : keys) text += EncodeKey(k) + "\n";
  const std::string tmp = source_.file + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::FailedPrecondition("cannot write " + tmp + ": " + strerror(errno));
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), source_.file.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status::FailedPrecondition("cannot write " + source_.file + ": " + strerror(errno));
  }
  return Status::Ok();
}

Status StoreSecretInjector::Start() noexcept {
  if (!store_) return Status::FailedPrecondition("secrets.store needs the host's store");
  try {
    std::lock_guard lock(mu_);
    return LoadLocked();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("secrets.store: ") + e.what());
  }
}

Health StoreSecretInjector::GetHealth() const noexcept {
  std::lock_guard lock(mu_);
  if (!keys_) return {HealthState::kDown, "no keys loaded"};
  return {};
}

std::string StoreSecretInjector::current_key_id() const {
  std::lock_guard lock(mu_);
  return keys_ ? keys_->front().id : "";
}

Result<StoreSecretInjector::Keys> StoreSecretInjector::CurrentKeys() {
  std::lock_guard lock(mu_);
  if (!source_.file.empty()) {
    struct stat st {};
    if (stat(source_.file.c_str(), &st) == 0 && !(StampOf(st) == stamp_)) {
      PADDOCK_RETURN_IF_ERROR(LoadLocked());
    }
  }
  if (!keys_) return Status::FailedPrecondition("secrets.store has not started");
  return keys_;
}

Result<SecretKey> StoreSecretInjector::KeyFor(const std::string& id, const SealedSecret& s) {
  PADDOCK_ASSIGN_OR_RETURN(Keys keys, CurrentKeys());
  for (const SecretKey& k : *keys) {
    if (k.id == id) return k;
  }
  if (!source_.file.empty()) {  // a key this process has not seen yet: read the file once more
    std::lock_guard lock(mu_);
    PADDOCK_RETURN_IF_ERROR(LoadLocked());
    for (const SecretKey& k : *keys_) {
      if (k.id == id) return k;
    }
  }
  return Status::FailedPrecondition("the secret '" + s.name + "' of team '" + s.team_id +
                                    "' is sealed with key " + id + ", which is not in " +
                                    (source_.file.empty() ? "$" + source_.env_name : source_.file) +
                                    " (keep old keys after the current one until `paddock rotate-key` ran)");
}

Result<std::vector<Secret>> StoreSecretInjector::Resolve(const SecretScope& scope) noexcept {
  try {
    std::vector<Secret> out;
    if (scope.team_id.empty()) return out;
    for (const SecretRef& want : scope.wanted) {
      Result<SealedSecret> sealed = store_->GetSealedSecret(scope.team_id, want.name);
      if (sealed.status().code() == StatusCode::kNotFound) continue;  // another injector may have it
      PADDOCK_RETURN_IF_ERROR(sealed.status());
      PADDOCK_ASSIGN_OR_RETURN(SecretKey key, KeyFor(sealed->key_id, *sealed));
      std::string binding;
      PADDOCK_ASSIGN_OR_RETURN(std::string value,
                               Open(key, sealed->team_id, sealed->name, sealed->sealed, &binding));
      Secret secret{want.name, std::move(value), want.file, sealed->version, {}};
      if (!binding.empty()) {
        std::optional<VaultBinding> b = DecodeVaultBinding(binding);
        if (!b) {
          return Status::Internal("the vault binding of secret '" + want.name + "' of team '" +
                                  scope.team_id + "' does not parse");
        }
        secret.vault = std::move(*b);
      }
      out.push_back(std::move(secret));
    }
    return out;
  } catch (const std::exception& e) {
    return Status::Internal(std::string("secrets.store: ") + e.what());
  }
}

Result<SecretInfo> StoreSecretInjector::Set(std::string_view team_id, std::string_view name,
                                            std::string_view value, const VaultBinding& vault) noexcept {
  try {
    PADDOCK_ASSIGN_OR_RETURN(Keys keys, CurrentKeys());
    const SecretKey& key = keys->front();
    SealedSecret s;
    s.team_id = std::string(team_id);
    s.name = std::string(name);
    s.key_id = key.id;
    PADDOCK_ASSIGN_OR_RETURN(s.sealed, Seal(key, team_id, name, value, EncodeVaultBinding(vault)));
    s.created_at = s.updated_at = Now();
    PADDOCK_ASSIGN_OR_RETURN(SealedSecret stored, store_->PutSealedSecret(s));
    return InfoOf(stored);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("secrets.store: ") + e.what());
  }
}

Result<std::vector<SecretInfo>> StoreSecretInjector::List(std::string_view team_id) noexcept {
  try {
    PADDOCK_ASSIGN_OR_RETURN(std::vector<SealedSecret> all, store_->ListSealedSecrets(team_id));
    std::vector<SecretInfo> out;
    for (const SealedSecret& s : all) out.push_back(InfoOf(s));
    return out;
  } catch (const std::exception& e) {
    return Status::Internal(std::string("secrets.store: ") + e.what());
  }
}

Status StoreSecretInjector::Delete(std::string_view team_id, std::string_view name) noexcept {
  return store_->DeleteSealedSecret(team_id, name);
}

Result<std::int64_t> StoreSecretInjector::Rotate() noexcept {
  try {
    if (!source_.file.empty()) {
      PADDOCK_ASSIGN_OR_RETURN(Keys keys, CurrentKeys());
      std::vector<SecretKey> next{GenerateKey()};
      next.insert(next.end(), keys->begin(), keys->end());
      std::lock_guard lock(mu_);
      PADDOCK_RETURN_IF_ERROR(WriteKeyring(next));
      PADDOCK_RETURN_IF_ERROR(LoadLocked());
    }
    PADDOCK_ASSIGN_OR_RETURN(Keys keys, CurrentKeys());
    const SecretKey& current = keys->front();
    std::int64_t resealed = 0;
    PADDOCK_ASSIGN_OR_RETURN(std::vector<SealedSecret> all, store_->ListSealedSecrets(""));
    for (SealedSecret& s : all) {
      if (s.key_id == current.id) continue;
      PADDOCK_ASSIGN_OR_RETURN(SecretKey old, KeyFor(s.key_id, s));
      std::string binding;
      PADDOCK_ASSIGN_OR_RETURN(std::string value, Open(old, s.team_id, s.name, s.sealed, &binding));
      s.key_id = current.id;
      PADDOCK_ASSIGN_OR_RETURN(s.sealed, Seal(current, s.team_id, s.name, value, binding));
      Status put = store_->ResealSecret(s);
      if (put.code() == StatusCode::kFailedPrecondition)
        continue;  // set or deleted meanwhile: its new value is current
      PADDOCK_RETURN_IF_ERROR(put);
      ++resealed;
    }
    return resealed;
  } catch (const std::exception& e) {
    return Status::Internal(std::string("secrets.store: ") + e.what());
  }
}

}  // namespace paddock::plugins::secrets_store

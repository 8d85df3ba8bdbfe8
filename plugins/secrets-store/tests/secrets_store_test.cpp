// secrets.store against a real sqlite store, from the side of whoever wants a value it keeps:
// another team, someone with the database file, a row moved between teams, a rotation while
// another process still holds the old keyring.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "paddock/secret_injector.h"
#include "paddock/testing/assert.h"
#include "paddock/vault.h"
#include "testing.h"

namespace paddock::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SecretsStore : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = LoadStore("sqlite", "", dir_.path());
    ASSERT_OK(loaded);
    store_ = *loaded;
    for (const char* t : {"alpha", "beta"}) ASSERT_OK(store_->CreateTeam(Team{t, t, NowMs(), {}, {}}));
  }

  std::shared_ptr<SecretInjector> Load(const std::string& config, const std::string& data) {
    auto loaded = LoadSecrets("store", config, data, store_.get());
    EXPECT_OK(loaded);
    return loaded.ok() ? *loaded : nullptr;
  }

  std::map<std::string, Secret> Resolve(SecretInjector& s, const std::string& team,
                                        std::vector<SecretRef> wanted) {
    auto got = s.Resolve(SecretScope{team, "agt_x", "ses_x", std::move(wanted)});
    EXPECT_OK(got);
    std::map<std::string, Secret> out;
    if (got.ok()) {
      for (const Secret& x : *got) out[x.name] = x;
    }
    return out;
  }

  TempDir dir_;
  std::shared_ptr<SessionStore> store_;
};

TEST_F(SecretsStore, AValueGoesOnlyToItsTeamAndOnlyWhenNamedAndNeverSitsInTheDatabaseInTheClear) {
  TempDir data;
  auto s = Load("", data.path());
  ASSERT_NE(s, nullptr);
  TeamSecrets* team = s->team_secrets();
  ASSERT_NE(team, nullptr);
  const std::string value = "ghp_alpha-only-value-0123456789";
  Result<SecretInfo> set = team->Set("alpha", "GITHUB_TOKEN", value, {});
  ASSERT_OK(set);
  EXPECT_EQ(set->version, 1);
  ASSERT_OK(team->Set("alpha", "UNNAMED", "not-asked-for-value", {}));

  auto alpha = Resolve(*s, "alpha", {{"GITHUB_TOKEN", false}});
  ASSERT_EQ(alpha.size(), 1u);  // UNNAMED is not given: an agent gets what it names
  EXPECT_EQ(alpha["GITHUB_TOKEN"].value, value);
  EXPECT_EQ(alpha["GITHUB_TOKEN"].version, 1);
  auto as_file = Resolve(*s, "alpha", {{"GITHUB_TOKEN", true}});
  EXPECT_TRUE(as_file["GITHUB_TOKEN"].file);
  // Beta naming alpha's secret gets nothing; no team, nothing.
  EXPECT_TRUE(Resolve(*s, "beta", {{"GITHUB_TOKEN", false}}).empty());
  EXPECT_TRUE(Resolve(*s, "", {{"GITHUB_TOKEN", false}}).empty());

  Result<std::vector<SecretInfo>> listed = team->List("alpha");
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_TRUE(team->List("beta")->empty());
  // The database and its journal hold only the sealed form.
  for (const auto& f : fs::directory_iterator(dir_.path())) {
    if (!f.is_regular_file()) continue;
    EXPECT_EQ(ReadAll(f.path()).find(value), std::string::npos) << f.path();
  }
  Result<SealedSecret> row = store_->GetSealedSecret("alpha", "GITHUB_TOKEN");
  ASSERT_OK(row);
  EXPECT_TRUE(row->sealed.starts_with("v1.")) << row->sealed;
  EXPECT_EQ(row->key_id.size(), 16u);
  // The key file the plugin made at the first start is for its owner only.
  struct stat st {};
  ASSERT_EQ(stat((fs::path(data.path()) / "secrets-store" / "secrets.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ASSERT_OK(team->Delete("alpha", "GITHUB_TOKEN"));
  EXPECT_CODE(team->Delete("alpha", "GITHUB_TOKEN"), kNotFound);
  EXPECT_TRUE(Resolve(*s, "alpha", {{"GITHUB_TOKEN", false}}).empty());
}

TEST_F(SecretsStore, ASealedValueMovedToAnotherTeamsRowOrAlteredDoesNotOpen) {
  TempDir data;
  auto s = Load("", data.path());
  ASSERT_NE(s, nullptr);
  ASSERT_OK(s->team_secrets()->Set("alpha", "TOKEN", "alpha-token-value", {}));
  Result<SealedSecret> row = store_->GetSealedSecret("alpha", "TOKEN");
  ASSERT_OK(row);
  // Someone with write access to the database copies alpha's sealed value into beta's row.
  SealedSecret moved = *row;
  moved.team_id = "beta";
  ASSERT_OK(store_->PutSealedSecret(moved));
  auto got = s->Resolve(SecretScope{"beta", "agt", "ses", {{"TOKEN", false}}});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("does not decrypt"), std::string::npos) << got.status().message();
  // Or under another name of alpha's.
  SealedSecret renamed = *row;
  renamed.name = "OTHER";
  ASSERT_OK(store_->PutSealedSecret(renamed));
  EXPECT_FALSE(s->Resolve(SecretScope{"alpha", "agt", "ses", {{"OTHER", false}}}).ok());
  // Or flips a character.
  SealedSecret altered = *row;
  altered.sealed[altered.sealed.size() / 2] = altered.sealed[altered.sealed.size() / 2] == 'A' ? 'B' : 'A';
  ASSERT_OK(store_->PutSealedSecret(altered));
  got = s->Resolve(SecretScope{"alpha", "agt", "ses", {{"TOKEN", false}}});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("does not decrypt"), std::string::npos);
}

TEST_F(SecretsStore, AVaultBindingComesBackWithItsValueAndOneAlteredInTheDatabaseDoesNotOpen) {
  TempDir data;
  auto s = Load("", data.path());
  ASSERT_NE(s, nullptr);
  VaultBinding bound;
  bound.hosts = {"api.example.com", "*.models.example:8443"};
  bound.form = VaultForm::kHeader;
  bound.field = "Authorization";
  bound.format = "Bearer {}";
  bound.agents = {"agt_coder"};
  ASSERT_OK(s->team_secrets()->Set("alpha", "MODEL_KEY", "sk-real-model-key-value", bound));
  Result<std::vector<SecretInfo>> listed = s->team_secrets()->List("alpha");
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().vault, bound);
  auto got = Resolve(*s, "alpha", {{"MODEL_KEY", false}});
  EXPECT_EQ(got["MODEL_KEY"].value, "sk-real-model-key-value");
  EXPECT_EQ(got["MODEL_KEY"].vault, bound);

  // Someone with write access to the database points the entry at a host of theirs.
  Result<SealedSecret> row = store_->GetSealedSecret("alpha", "MODEL_KEY");
  ASSERT_OK(row);
  ASSERT_TRUE(row->sealed.starts_with("v2.")) << row->sealed;
  EXPECT_EQ(row->sealed.find("sk-real-model-key-value"), std::string::npos);
  VaultBinding theirs = bound;
  theirs.hosts = {"attacker.example"};
  SealedSecret moved = *row;
  const std::string body = row->sealed.substr(row->sealed.find('.', 3));
  // The binding text as the plugin writes it, base64: only the binding part changes.
  std::string text = EncodeVaultBinding(theirs);
  ASSERT_TRUE(DecodeVaultBinding(text).has_value());
  {
    // Re-encode with the same alphabet the plugin uses (standard, padded).
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string b64;
    size_t i = 0;
    for (; i + 2 < text.size(); i += 3) {
      unsigned v =
          (unsigned char)text[i] << 16 | (unsigned char)text[i + 1] << 8 | (unsigned char)text[i + 2];
      for (int k = 18; k >= 0; k -= 6) b64 += kAlphabet[(v >> k) & 63];
    }
    if (i < text.size()) {
      unsigned v = (unsigned char)text[i] << 16 | (i + 1 < text.size() ? (unsigned char)text[i + 1] << 8 : 0);
      b64 += kAlphabet[(v >> 18) & 63];
      b64 += kAlphabet[(v >> 12) & 63];
      b64 += i + 1 < text.size() ? kAlphabet[(v >> 6) & 63] : '=';
      b64 += '=';
    }
    moved.sealed = "v2." + b64 + body;
  }
  ASSERT_OK(store_->PutSealedSecret(moved));
  // The listing shows what the row says, but the value does not open with it.
  EXPECT_EQ(s->team_secrets()->List("alpha")->front().vault.hosts, theirs.hosts);
  auto opened = s->Resolve(SecretScope{"alpha", "agt_coder", "ses", {{"MODEL_KEY", false}}});
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("does not decrypt"), std::string::npos)
      << opened.status().message();
  // Nor does stripping the binding off make it a plain secret.
  SealedSecret stripped = *row;
  stripped.sealed = "v1." + body.substr(1);
  ASSERT_OK(store_->PutSealedSecret(stripped));
  EXPECT_FALSE(s->Resolve(SecretScope{"alpha", "agt_coder", "ses", {{"MODEL_KEY", false}}}).ok());
}

TEST_F(SecretsStore, RotationPutsANewKeyFirstReEncryptsEveryValueAndAnotherProcessFollows) {
  TempDir data;
  const std::string keys = (fs::path(data.path()) / "keys").string();
  auto first = Load("", data.path());  // makes <data>/secrets-store/secrets.key
  ASSERT_NE(first, nullptr);
  fs::copy_file(fs::path(data.path()) / "secrets-store" / "secrets.key", keys);
  const std::string config = "key_file = \"" + keys + "\"\n";
  auto a = Load(config, data.path());
  auto b = Load(config, data.path());  // another process, same key file
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  VaultBinding bound;
  bound.hosts = {"api.example.com"};
  bound.form = VaultForm::kQuery;
  bound.field = "key";
  for (const char* t : {"alpha", "beta"}) {
    ASSERT_OK(a->team_secrets()->Set(t, "ONE", std::string(t) + "-one-value", {}));
    ASSERT_OK(a->team_secrets()->Set(t, "TWO", std::string(t) + "-two-value", bound));
  }
  const std::string old_key = store_->GetSealedSecret("alpha", "ONE")->key_id;
  Result<std::int64_t> resealed = a->team_secrets()->Rotate();
  ASSERT_OK(resealed);
  EXPECT_EQ(*resealed, 4);
  const std::string text = ReadAll(keys);
  size_t lines = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines += !line.empty() && line[0] != '#';
  EXPECT_EQ(lines, 2u);  // the new key first, the old one kept
  Result<std::vector<SealedSecret>> sealed_now = store_->ListSealedSecrets("");
  ASSERT_TRUE(sealed_now.ok()) << sealed_now.status().message();
  for (const SealedSecret& s : *sealed_now) EXPECT_NE(s.key_id, old_key) << s.name;
  // The other process had only the old key: it reads the file again when it meets the new one.
  auto got = Resolve(*b, "beta", {{"TWO", false}});
  EXPECT_EQ(got["TWO"].value, "beta-two-value");
  EXPECT_EQ(got["TWO"].vault, bound);  // resealed with its binding
  // Its next value is sealed under the new key too.
  ASSERT_OK(b->team_secrets()->Set("alpha", "THREE", "alpha-three-value", {}));
  EXPECT_EQ(store_->GetSealedSecret("alpha", "THREE")->key_id,
            store_->GetSealedSecret("alpha", "ONE")->key_id);
  // Each rotation makes a new key, and reseals everything once more under it.
  Result<std::int64_t> again = a->team_secrets()->Rotate();
  ASSERT_OK(again);
  EXPECT_EQ(*again, 5);
}

TEST_F(SecretsStore, KeysFromTheEnvironmentOpenOldValuesAndRotationMovesThemToTheFirstKey) {
  TempDir data;
  // Two keys: the second is an older one some values are still sealed with.
  const std::string k_new = "bmV3LWtleS1uZXcta2V5LW5ldy1rZXktbmV3LWtleSE=";
  const std::string k_old = "b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleSE=";
  setenv("PADDOCK_TEST_SECRETS_KEY", k_old.c_str(), 1);
  auto old_only = Load("key_env = \"PADDOCK_TEST_SECRETS_KEY\"\n", data.path());
  ASSERT_NE(old_only, nullptr);
  ASSERT_OK(old_only->team_secrets()->Set("alpha", "TOKEN", "sealed-under-the-old-key", {}));
  setenv("PADDOCK_TEST_SECRETS_KEY", (k_new + "," + k_old).c_str(), 1);
  auto both = Load("key_env = \"PADDOCK_TEST_SECRETS_KEY\"\n", data.path());
  ASSERT_NE(both, nullptr);
  EXPECT_EQ(Resolve(*both, "alpha", {{"TOKEN", false}})["TOKEN"].value, "sealed-under-the-old-key");
  const std::string before = store_->GetSealedSecret("alpha", "TOKEN")->key_id;
  Result<std::int64_t> resealed = both->team_secrets()->Rotate();
  ASSERT_OK(resealed);
  EXPECT_EQ(*resealed, 1);
  EXPECT_NE(store_->GetSealedSecret("alpha", "TOKEN")->key_id, before);
  // A process with only the old key now says which key it lacks.
  auto stale = old_only->Resolve(SecretScope{"alpha", "agt", "ses", {{"TOKEN", false}}});
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(stale.status().message().find("$PADDOCK_TEST_SECRETS_KEY"), std::string::npos)
      << stale.status().message();
  unsetenv("PADDOCK_TEST_SECRETS_KEY");
}

TEST_F(SecretsStore, WithoutAKeyOrWithABadOneItRefusesToStartSayingWhy) {
  TempDir data;
  unsetenv("PADDOCK_TEST_NO_KEY");
  auto none = LoadSecrets("store", "key_env = \"PADDOCK_TEST_NO_KEY\"\ngenerate_key = false\n", data.path(),
                          store_.get());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("$PADDOCK_TEST_NO_KEY"), std::string::npos)
      << none.status().message();
  const std::string bad = (fs::path(data.path()) / "bad.keys").string();
  std::ofstream(bad) << "# a comment\nnot-base64!\n";
  auto broken = LoadSecrets("store", "key_file = \"" + bad + "\"\n", data.path(), store_.get());
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find(bad + ":2: not a key"), std::string::npos)
      << broken.status().message();
  std::ofstream(bad) << "c2hvcnQ=\n";  // base64, but 5 bytes
  EXPECT_FALSE(LoadSecrets("store", "key_file = \"" + bad + "\"\n", data.path(), store_.get()).ok());
  auto missing = LoadSecrets("store", "key_file = \"/nonexistent/keys\"\n", data.path(), store_.get());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/keys"), std::string::npos);
}

}  // namespace
}  // namespace paddock::testing

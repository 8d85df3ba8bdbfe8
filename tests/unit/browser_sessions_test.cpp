// Browser session cookies from the side of whoever holds one, or wants one: only this install's
// signature, unexpired and unaltered, names a key; the CSRF token is the cookie's own.
#include "services/teams/browser_sessions.h"

#include <gtest/gtest.h>

#include "paddock/testing/assert.h"
#include "testing.h"

namespace paddock::testing {
namespace {

TEST(BrowserSessions, OnlyAnUnalteredUnexpiredCookieOfThisInstallNamesItsKey) {
  TempDir dir;
  auto sessions = BrowserSessions::Load(dir.path() + "/session.key", 3600);
  ASSERT_OK(sessions);
  const BrowserSession s = (*sessions)->Issue("key_alpha");
  EXPECT_EQ((*sessions)->KeyOf(s.cookie), "key_alpha");
  EXPECT_TRUE((*sessions)->CsrfMatches(s.cookie, s.csrf_token));
  EXPECT_FALSE((*sessions)->CsrfMatches(s.cookie, s.csrf_token.substr(1)));
  const BrowserSession other = (*sessions)->Issue("key_alpha");
  EXPECT_NE(other.cookie, s.cookie);  // each sign-in its own
  EXPECT_FALSE((*sessions)->CsrfMatches(s.cookie, other.csrf_token));
  // Another key's id, a later expiry, a changed signature: nothing.
  const std::string tail = s.cookie.substr(s.cookie.find('.'));
  EXPECT_FALSE((*sessions)->KeyOf("key_admin" + tail));
  std::string later = s.cookie;
  later[later.find('.') + 1] = later[later.find('.') + 1] == '9' ? '8' : '9';
  EXPECT_FALSE((*sessions)->KeyOf(later));
  std::string altered = s.cookie;
  altered.back() = altered.back() == 'a' ? 'b' : 'a';
  EXPECT_FALSE((*sessions)->KeyOf(altered));
  for (const std::string& junk :
       {std::string(), std::string("..."), std::string("a.b.c.d.e"), std::string(300, 'a'),
        std::string("key_alpha.-1.00.") + std::string(48, '0')})
    EXPECT_FALSE((*sessions)->KeyOf(junk)) << junk;
  // Another install's key signs nothing here.
  auto elsewhere = BrowserSessions::Load(dir.path() + "/other.key", 3600);
  ASSERT_OK(elsewhere);
  EXPECT_FALSE((*elsewhere)->KeyOf(s.cookie));
  // Expired.
  auto short_lived = BrowserSessions::Load(dir.path() + "/session.key", -1);
  ASSERT_OK(short_lived);
  EXPECT_FALSE((*short_lived)->KeyOf((*short_lived)->Issue("key_alpha").cookie));
}

TEST(BrowserSessions, TheCookieIsFoundByItsExactNameAmongOthers) {
  EXPECT_EQ(CookieValue("paddock_session=abc", kSessionCookie), "abc");
  EXPECT_EQ(CookieValue("theme=dark; paddock_session=abc; x=1", kSessionCookie), "abc");
  EXPECT_EQ(CookieValue("xpaddock_session=evil; paddock_session_x=evil", kSessionCookie), std::nullopt);
  EXPECT_EQ(CookieValue("", kSessionCookie), std::nullopt);
  EXPECT_EQ(CookieValue("paddock_session=", kSessionCookie), "");
}

}  // namespace
}  // namespace paddock::testing

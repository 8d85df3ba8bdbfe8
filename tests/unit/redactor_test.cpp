// Redaction of streamed output: a secret is caught whatever chunk boundary splits it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "util/redactor.h"

namespace paddock {
namespace {

// Feeds `text` to a StreamRedactor cut at `cuts`, and returns every piece it showed.
std::vector<std::string> Shown(const Redactor& r, const std::string& text, std::vector<size_t> cuts) {
  StreamRedactor s(r);
  std::vector<std::string> pieces;
  size_t at = 0;
  cuts.push_back(text.size());
  for (size_t cut : cuts) {
    std::string piece = s.Feed("stdout", std::string_view(text).substr(at, cut - at));
    if (!piece.empty()) pieces.push_back(piece);
    at = cut;
  }
  std::string rest = s.Flush("stdout");
  if (!rest.empty()) pieces.push_back(rest);
  return pieces;
}

std::string Joined(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

TEST(StreamRedactor, ASecretIsCaughtAtEveryOffsetAroundAChunkBoundary) {
  Redactor r;
  const std::string secret = "s3cr3t-value-0123456789";
  r.Add(secret);
  r.Add("short");
  const size_t boundary = 64;
  for (size_t start = boundary - secret.size() - 2; start <= boundary + 2; ++start) {
    const std::string text = std::string(start, 'A') + secret + std::string(10, 'B');
    SCOPED_TRACE("secret at offset " + std::to_string(start));
    std::vector<std::string> pieces = Shown(r, text, {boundary});
    for (const auto& p : pieces) EXPECT_EQ(p.find(secret), std::string::npos) << p;
    // No piece, and no two pieces joined, hold it; the text around it is all there.
    EXPECT_EQ(Joined(pieces), std::string(start, 'A') + "[redacted]" + std::string(10, 'B'));
  }
}

TEST(StreamRedactor, ASecretSplitOverManySmallChunksIsCaught) {
  Redactor r;
  const std::string secret = "token-abcdefghijklmnop";
  r.Add(secret);
  const std::string text = "x=" + secret + ";y=" + secret + "\n";
  std::vector<size_t> cuts;
  for (size_t i = 1; i < text.size(); ++i) cuts.push_back(i);  // one byte at a time
  EXPECT_EQ(Joined(Shown(r, text, cuts)), "x=[redacted];y=[redacted]\n");
}

TEST(StreamRedactor, TextThatOnlyLooksLikeTheStartOfASecretIsShownOnceItCannotBeOne) {
  Redactor r;
  r.Add("secret-value");
  StreamRedactor s(r);
  EXPECT_EQ(s.Feed("stdout", "a secret-"), "a ");  // "secret-" may be the start of the value
  EXPECT_EQ(s.Feed("stdout", "sauce"), "secret-sauce");
  EXPECT_TRUE(s.Pending().empty());
  // Streams are apart: what stderr holds back does not hold stdout.
  EXPECT_EQ(s.Feed("stderr", "xx secr"), "xx ");
  EXPECT_EQ(s.Feed("stdout", "plain"), "plain");
  EXPECT_EQ(s.Pending(), std::vector<std::string>{"stderr"});
  EXPECT_EQ(s.Flush("stderr"), "secr");
}

TEST(StreamRedactor, WithoutSecretsNothingIsHeldBack) {
  Redactor r;
  StreamRedactor s(r);
  EXPECT_EQ(s.Feed("stdout", "anything at all"), "anything at all");
  EXPECT_TRUE(s.Pending().empty());
}

}  // namespace
}  // namespace paddock

#include "http/router.h"

#include <gtest/gtest.h>

#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <sstream>
#include "http/exchange.h"
#include "http/render.h"
#include "paddock/json.h"
#include "paddock/testing/assert.h"
#include "services/events/event_service.h"
#include "testing.h"
#include "util/ids.h"
#include "util/redactor.h"

namespace paddock {
namespace {

TEST(Router, MatchesPatternsAndCapturesParameters) {
  RouteMatch m = ApiRouter().Match("POST", "/api/sessions/ses_1/runs/run_2/cancel");
  ASSERT_NE(m.route, nullptr);
  EXPECT_STREQ(m.route->pattern, "/api/sessions/{id}/runs/{run_id}/cancel");
  EXPECT_EQ(m.params["id"], "ses_1");
  EXPECT_EQ(m.params["run_id"], "run_2");
  m = ApiRouter().Match("GET", "/api/sessions/ses%5F1/");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params["id"], "ses_1");
  m = ApiRouter().Match("GET", "/api/sessions/" + std::string(kMaxIdLength, 'a'));
  ASSERT_NE(m.route, nullptr);
}

TEST(Router, ACaptureThatIsNoIdMatchesNoRouteAndIsNamed) {
  for (const std::string& bad :
       {std::string("ses%201"), std::string("a.b"), std::string("%2E%2E"), std::string("ses%00"),
        std::string(kMaxIdLength + 1, 'a'), std::string("%zz")}) {
    RouteMatch m = ApiRouter().Match("GET", "/api/sessions/" + bad + "/events");
    EXPECT_EQ(m.route, nullptr) << bad;
    EXPECT_TRUE(m.allowed_methods.empty()) << bad;
    EXPECT_EQ(m.bad_id, bad);
  }
  RouteMatch m = ApiRouter().Match("POST", "/api/sessions/ses_1/runs/r.1/cancel");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.bad_id, "r.1");
}

TEST(Router, TellsUnknownPathFromWrongMethod) {
  RouteMatch m = ApiRouter().Match("GET", "/api/nothing");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.allowed_methods.empty());
  m = ApiRouter().Match("PUT", "/api/sessions");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"POST", "GET"}));
  m = ApiRouter().Match("GET", "/api/sessions//messages");
  EXPECT_EQ(m.route, nullptr);
  m = ApiRouter().Match("HEAD", "/healthz");
  EXPECT_NE(m.route, nullptr);
}

TEST(Errors, OneTableMapsStatusToHttp) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNoSpace), 507);
  EXPECT_EQ(StatusCodeName(StatusCode::kNoSpace), "insufficient_storage");
  EXPECT_TRUE(Status::NoSpace("disk full").retryable());
}

TEST(Redactor, ReplacesEveryOccurrenceLongestFirst) {
  Redactor r;
  r.Add("bar");
  r.Add("foobar");
  r.Add("");
  EXPECT_EQ(r.Redact("x foobar y bar bar"), "x [redacted] y [redacted] [redacted]");
  EXPECT_EQ(r.Redact("nothing"), "nothing");
}

TEST(Redactor, JsonValuesAreRedactedKeysAreNot) {
  Redactor r;
  r.Add("text");
  r.Add("s3cr3t");
  auto out = RedactJsonObject(R"({"text":"my s3cr3t","n":1,"list":["s3cr3t"]})", r);
  ASSERT_OK(out);
  EXPECT_NE(out->find("\"text\""), std::string::npos);
  EXPECT_EQ(out->find("s3cr3t"), std::string::npos) << *out;
  EXPECT_CODE(RedactJsonObject("[1,2]", r), kInvalidArgument);
  EXPECT_CODE(RedactJsonObject("{not json", r), kInvalidArgument);
}

TEST(Redactor, JsonDeepInsideIsRedactedAndTheRestKeptAsItWas) {
  Redactor r;
  r.Add("s3cr3t");
  // Only the second element of a nested array holds the value; everything around it stays.
  auto out = RedactJsonObject(R"({"a":{"b":[1,"s3cr3t",{"c":"plain"}],"d":"x"},"e":[true,null]})", r);
  ASSERT_OK(out);
  EXPECT_EQ(*out, R"({"a":{"b":[1,"[redacted]",{"c":"plain"}],"d":"x"},"e":[true,null]})");
  // Nothing to redact: the same text.
  auto same = RedactJsonObject(R"({"a":{"b":[1,"open",{"c":"plain"}]},"e":"f"})", r);
  ASSERT_OK(same);
  EXPECT_EQ(*same, R"({"a":{"b":[1,"open",{"c":"plain"}]},"e":"f"})");
}

TEST(Render, SessionTextIsTheDocumentedObjectWithSecretsRedacted) {
  Session s;
  s.id = "ses_1";
  s.agent_id = "agt_1";
  s.status = SessionStatus::kFailed;
  s.status_reason = "token s3cr3t refused: \"quoted\" / path\n";
  s.last_seq = 42;
  s.native_session_id = "native-\xc3\xa9";
  s.usage.input_tokens = 7;
  s.usage.cost_usd = 0.125;
  s.created_at = 1700000000123;
  s.updated_at = 1700000000456;
  Redactor none;
  auto reparse = [](const std::string& json) {
    std::ostringstream out;
    Poco::JSON::Stringifier::stringify(Poco::JSON::Parser().parse(json), out);
    return out.str();
  };
  std::ostringstream poco;
  Poco::JSON::Stringifier::stringify(RenderSession(s), poco);
  // Same fields, values and order as the object rendering (sandbox_id, model: null).
  EXPECT_EQ(reparse(RenderSessionJson(s, none)), reparse(poco.str()));
  Redactor r;
  r.Add("s3cr3t");
  const std::string redacted = RenderSessionJson(s, r);
  EXPECT_EQ(redacted.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(paddock::testing::JsonField(redacted, "status_reason"),
            "token [redacted] refused: \"quoted\" / path\n");
}

TEST(Json, QuoteEscapesAndRepairsInvalidUtf8) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(JsonQuote("bad\xff"), "\"bad\xEF\xBF\xBD\"");
}

TEST(Ids, SortByCreationAndHaveAFixedShape) {
  std::string a = NewId("ses");
  EXPECT_TRUE(LooksLikeId(a, "ses"));
  EXPECT_FALSE(LooksLikeId(a, "agt"));
  EXPECT_FALSE(LooksLikeId("ses_xyz", "ses"));
  // Many ids in the same millisecond still sort in the order they were made.
  std::string prev = a;
  for (int i = 0; i < 5000; ++i) {
    std::string next = NewId("ses");
    ASSERT_LT(prev, next);
    prev = next;
  }
}

}  // namespace
}  // namespace paddock

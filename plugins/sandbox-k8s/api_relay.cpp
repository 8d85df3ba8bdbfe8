#include "api_relay.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <array>

#include "paddock/json.h"

namespace paddock::plugins::sandbox_k8s {
namespace {

// Headers of the runtime's protocol that travel both ways; everything else (hop-by-hop,
// Authorization, Host) is the relay's and the API server's own.
constexpr std::array kRequestHeaders = {"Content-Type", "Accept", "Accept-Encoding"};
constexpr std::array kResponseHeaders = {"Content-Type", "Content-Encoding", "WWW-Authenticate",
                                         "X-Paddock-Entries"};

void SendError(Poco::Net::HTTPServerResponse& resp, Poco::Net::HTTPResponse::HTTPStatus status,
               const std::string& message) {
  const std::string body = "{\"error\":" + JsonQuote(message) + "}";
  resp.setStatus(status);
  resp.setContentType("application/json");
  resp.setContentLength(static_cast<std::streamsize>(body.size()));
  resp.send() << body;
}

// Copies what has arrived, as it arrives: one read from the socket, then whatever it buffered.
void Relay(std::istream& in, std::ostream& out) {
  std::array<char, 16384> buf{};
  for (;;) {
    const int c = in.get();
    if (c == std::char_traits<char>::eof()) break;
    buf[0] = static_cast<char>(c);
    const std::streamsize more = in.readsome(buf.data() + 1, static_cast<std::streamsize>(buf.size() - 1));
    out.write(buf.data(), 1 + more);
    out.flush();
    if (!out) break;  // the client went away: stop reading, which closes the upstream stream
  }
}

// The runtime's API is /v1/...: anything else, or a path that could climb out of the pod's
// proxy path on the API server (dot segments, encoded or not), is refused.
bool RuntimePath(const std::string& uri) {
  if (uri.rfind("/v1/", 0) != 0) return false;
  const std::string path = uri.substr(0, uri.find('?'));
  if (path.find('%') != std::string::npos || path.find('\\') != std::string::npos) return false;
  for (size_t at = 0; at != std::string::npos;) {
    const size_t next = path.find('/', at + 1);
    const std::string segment =
        path.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    if (segment == "." || segment == "..") return false;
    at = next;
  }
  return true;
}

// The message of a Kubernetes Status object, or "" when `text` is not one.
std::string ApiServerMessage(const std::string& text) {
  try {
    Poco::JSON::Parser parser;
    auto o = parser.parse(text).extract<Poco::JSON::Object::Ptr>();
    if (o->optValue<std::string>("kind", "") != "Status") return "";
    return o->optValue<std::string>("message", "HTTP " + std::to_string(o->optValue<int>("code", 0)));
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

std::string PodProxyPath(const RelayTarget& target, const std::string& path_and_query) {
  std::string rest =
      path_and_query.empty() || path_and_query.front() != '/' ? "/" + path_and_query : path_and_query;
  return "/api/v1/namespaces/" + target.ns + "/pods/" + target.pod + ":" + std::to_string(target.port) +
         "/proxy" + rest;
}

struct ApiServerRelay::Handler final : Poco::Net::HTTPRequestHandler {
  explicit Handler(ApiServerRelay& relay) : relay_(relay) {}

  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    using Poco::Net::HTTPResponse;
    try {
      const std::string auth = req.get("Authorization", "");
      RelayTarget target;
      if (auth.rfind("Bearer ", 0) == 0 && relay_.Retired(auth.substr(7))) {
        return SendError(resp, HTTPResponse::HTTP_SERVICE_UNAVAILABLE, "the sandbox is gone");
      }
      if (auth.rfind("Bearer ", 0) != 0 || !relay_.Lookup(auth.substr(7), &target)) {
        resp.set("WWW-Authenticate", "Bearer");
        return SendError(resp, HTTPResponse::HTTP_UNAUTHORIZED, "missing or wrong bearer token");
      }
      if (!RuntimePath(req.getURI())) {
        return SendError(
            resp, HTTPResponse::HTTP_BAD_REQUEST,
            "not a runtime path (/v1/..., no dot segments or escapes): " + req.getURI().substr(0, 200));
      }
      ForwardRequest f;
      f.method = req.getMethod();
      f.path_and_query = PodProxyPath(target, req.getURI());
      f.headers.emplace_back("X-Paddock-Runtime-Token", auth.substr(7));
      for (const char* name : kRequestHeaders) {
        if (req.has(name)) f.headers.emplace_back(name, req.get(name));
      }
      f.body = &req.stream();
      f.content_length = req.getChunkedTransferEncoding() ? -1 : req.getContentLength64();
      if (f.content_length == Poco::Net::HTTPMessage::UNKNOWN_CONTENT_LENGTH) f.content_length = 0;
      Status sent = relay_.client_.Forward(f, [&](const HTTPResponse& answer, std::istream& body) {
        // The API server's own refusals (a Status object: the pod is gone, its port does not
        // answer) are not the runtime's: the runtime is unreachable.
        if (answer.getStatus() == HTTPResponse::HTTP_NOT_FOUND ||
            answer.getStatus() == HTTPResponse::HTTP_SERVICE_UNAVAILABLE ||
            answer.getStatus() == HTTPResponse::HTTP_BAD_GATEWAY) {
          std::string text;
          Poco::StreamCopier::copyToString(body, text);
          std::string message = ApiServerMessage(text);
          if (!message.empty()) {
            return SendError(resp, HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                             "the API server cannot reach the sandbox's pod " + target.ns + "/" + target.pod +
                                 ": " + message);
          }
          resp.setStatus(answer.getStatus());
          if (answer.has("Content-Type")) resp.setContentType(answer.getContentType());
          resp.setContentLength(static_cast<std::streamsize>(text.size()));
          resp.send() << text;
          return;
        }
        resp.setStatus(answer.getStatus());
        for (const char* name : kResponseHeaders) {
          if (answer.has(name)) resp.set(name, answer.get(name));
        }
        if (answer.hasContentLength()) {
          resp.setContentLength64(answer.getContentLength64());
        } else {
          resp.setChunkedTransferEncoding(true);
        }
        Relay(body, resp.send());
      });
      if (!sent.ok() && !resp.sent()) {
        SendError(resp, HTTPResponse::HTTP_BAD_GATEWAY,
                  "the sandbox's runtime cannot be reached through the API server: " + sent.message());
      }
    } catch (const std::exception& e) {
      if (!resp.sent()) {
        SendError(resp, HTTPResponse::HTTP_BAD_GATEWAY,
                  std::string("relaying to the sandbox's runtime failed: ") + e.what());
      }
    }
  }

  ApiServerRelay& relay_;
};

namespace {

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(ApiServerRelay& relay) : relay_(relay) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new ApiServerRelay::Handler(relay_);
  }

 private:
  ApiServerRelay& relay_;
};

}  // namespace

ApiServerRelay::ApiServerRelay(KubeClient& client) : client_(client) {}

ApiServerRelay::~ApiServerRelay() {
  if (server_) server_->stopAll(true);
  if (threads_) threads_->joinAll();
}

Status ApiServerRelay::Start() {
  try {
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress("127.0.0.1", 0), /*reuseAddress=*/true, /*reusePort=*/false);
    socket.listen(128);
    port_ = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    // An exec holds its connection for as long as the command runs.
    params->setMaxThreads(256);
    params->setMaxQueued(256);
    params->setKeepAlive(true);
    params->setTimeout(Poco::Timespan(3600, 0));
    threads_ = std::make_unique<Poco::ThreadPool>("k8s-relay", 2, 256);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), *threads_, socket, params);
    server_->start();
    return Status::Ok();
  } catch (const Poco::Exception& e) {
    return Status::Unavailable("the API-server relay cannot listen on 127.0.0.1: " + e.displayText());
  }
}

std::string ApiServerRelay::address() const { return "tcp:127.0.0.1:" + std::to_string(port_); }

void ApiServerRelay::Register(const std::string& token, RelayTarget target) {
  if (token.empty()) return;
  std::lock_guard lock(mu_);
  targets_[token] = std::move(target);
}

void ApiServerRelay::Forget(const std::string& token) {
  std::lock_guard lock(mu_);
  if (targets_.erase(token) == 0) return;
  // Kept a while, so that a client of a destroyed sandbox hears it is gone, not that its token
  // is wrong.
  retired_.insert(token);
  retired_order_.push_back(token);
  if (retired_order_.size() > kRetiredKept) {
    retired_.erase(retired_order_.front());
    retired_order_.pop_front();
  }
}

bool ApiServerRelay::Retired(const std::string& token) const {
  std::lock_guard lock(mu_);
  return retired_.count(token) > 0;
}

bool ApiServerRelay::Lookup(const std::string& token, RelayTarget* target) const {
  std::lock_guard lock(mu_);
  auto it = targets_.find(token);
  if (it == targets_.end()) return false;
  *target = it->second;
  return true;
}

}  // namespace paddock::plugins::sandbox_k8s

// The LLM-as-judge client (ordo/eval/judge.hpp) against a small OpenAI-compatible server that
// runs in a thread of this test on 127.0.0.1 (an ephemeral port): the requests it sends, the
// scores it parses and averages, chunked bodies, HTTP errors, bad JSON, a refused connection
// and a timeout. The suite "live" (ctest eval.judge.live) runs against a real server at
// $ORDO_JUDGE_URL and is skipped when that is not set.
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <ordo/eval/judge.hpp>

#include "../test_support.hpp"

// JudgeOptions are written with designated initializers that leave the other fields at their
// defaults, which GCC 12's -Wextra reports.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace std::chrono_literals;
using ordo::eval::JudgeClient;
using ordo::eval::JudgeOptions;
using ordo::eval::parse_judge_score;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// What the test server received.
struct Received {
  std::string method, target, version;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return "(none)";
  }
  bool has_header(const std::string& name) const { return header(name) != "(none)"; }
};

/// A one-connection-at-a-time HTTP server in a thread. `respond` gives the raw bytes of the
/// response to each request (the server then closes the connection); `delay` holds the
/// response back (the server still stops promptly when destroyed).
class TestServer {
 public:
  using Respond = std::function<std::string(const Received&, int index)>;

  explicit TestServer(Respond respond, std::chrono::milliseconds delay = 0ms)
      : respond_(std::move(respond)), delay_(delay) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  int port() const { return port_; }
  std::string base_url(const std::string& path = "/v1") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<Received> received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  void run() {
    int index = 0;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      Received r;
      if (read_request(c, r)) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          received_.push_back(r);
        }
        const auto until = std::chrono::steady_clock::now() + delay_;
        while (!stop_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
        const std::string out = respond_(r, index++);
        for (std::size_t sent = 0; sent < out.size();) {
          const auto n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
          if (n <= 0) break;
          sent += static_cast<std::size_t>(n);
        }
      }
      ::close(c);
    }
  }

  static bool read_request(int c, Received& r) {
    std::string in;
    char buffer[4096];
    std::size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      const auto n = ::recv(c, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      in.append(buffer, static_cast<std::size_t>(n));
    }
    const std::string head = in.substr(0, head_end);
    std::size_t eol = head.find("\r\n");
    const std::string request_line = head.substr(0, eol);
    const auto s1 = request_line.find(' '), s2 = request_line.rfind(' ');
    r.method = request_line.substr(0, s1);
    r.target = request_line.substr(s1 + 1, s2 - s1 - 1);
    r.version = request_line.substr(s2 + 1);
    std::size_t length = 0;
    while (eol != std::string::npos) {
      const auto next = head.find("\r\n", eol + 2);
      const std::string line = head.substr(eol + 2, next == std::string::npos ? std::string::npos : next - eol - 2);
      const auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      if (name == "content-length") length = std::stoul(value);
      r.headers.emplace_back(name, value);
      eol = next;
    }
    r.body = in.substr(head_end + 4);
    while (r.body.size() < length) {
      const auto n = ::recv(c, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      r.body.append(buffer, static_cast<std::size_t>(n));
    }
    return true;
  }

  Respond respond_;
  std::chrono::milliseconds delay_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<Received> received_;
};

std::string completion_json(const std::string& content) {
  return nlohmann::json{
      {"id", "chatcmpl-test"},
      {"object", "chat.completion"},
      {"model", "tiny-judge"},
      {"choices",
       {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", content}}}, {"finish_reason", "stop"}}}},
      {"usage", {{"prompt_tokens", 10}, {"completion_tokens", 5}, {"total_tokens", 15}}}}
      .dump();
}

std::string http_response(int status, const std::string& reason, const std::string& body,
                          const std::string& type = "application/json") {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

std::string ok(const std::string& content) { return http_response(200, "OK", completion_json(content)); }

/// The body in chunks of `size` bytes, with a chunk extension on the first and a trailer.
std::string chunked_response(const std::string& body, std::size_t size) {
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  char hex[32];
  for (std::size_t at = 0; at < body.size(); at += size) {
    const auto part = body.substr(at, size);
    std::snprintf(hex, sizeof hex, "%zX", part.size());
    out += std::string(hex) + (at == 0 ? ";ext=1" : "") + "\r\n" + part + "\r\n";
  }
  return out + "0\r\nX-Trailer: done\r\n\r\n";
}

/// An ephemeral port with nothing listening on it.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// Sets an environment variable for the scope (restores the previous state).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_SUITE_BEGIN("judge");

TEST_CASE("URLs: http only, with host, port and path") {
  using ordo::eval::http::parse_url;
  auto u = parse_url("http://127.0.0.1:8081/v1");
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 8081);
  CHECK(u.path == "/v1");
  u = parse_url("HTTP://judge.local");
  CHECK((u.host == "judge.local" && u.port == 80 && u.path == "/"));
  u = parse_url("http://[::1]:9000/api?x=1#frag");
  CHECK((u.host == "::1" && u.port == 9000 && u.path == "/api?x=1"));
  CHECK(error_of([] { parse_url("https://api.example.com/v1"); }) ==
        "https://api.example.com/v1: HTTPS is not supported: ordo's judge client speaks plain HTTP/1.1 only (no "
        "TLS); use an http:// URL of a local server, or a local proxy that forwards to the HTTPS endpoint");
  CHECK(error_of([] { parse_url("ftp://x/"); }) == "ftp://x/: not an http:// URL");
  CHECK(error_of([] { parse_url("http://:80/"); }) == "http://:80/: no host");
  CHECK(error_of([] { parse_url("http://h:0/"); }) == "http://h:0/: the port must be within 1..65535");
  CHECK(error_of([] { parse_url("http://h:70000/"); }) == "http://h:70000/: the port must be within 1..65535");
  CHECK(error_of([] { parse_url("http://h:8o/"); }) == "http://h:8o/: the port is not a number");
  CHECK(error_of([] { parse_url("http://h:/"); }) == "http://h:/: the port must be within 1..65535");
  CHECK(contains(error_of([] { parse_url("http://user:pw@h/"); }), "ORDO_JUDGE_API_KEY"));
  CHECK(contains(error_of([] { parse_url("http://[::1/"); }), "unterminated IPv6 address"));

  CHECK(JudgeClient::from_url("http://127.0.0.1:8081/v1").endpoint().path == "/v1/chat/completions");
  CHECK(JudgeClient::from_url("http://127.0.0.1:8081/v1/").endpoint().path == "/v1/chat/completions");
  CHECK(JudgeClient::from_url("http://127.0.0.1:8081").endpoint().path == "/chat/completions");
  CHECK(JudgeClient::from_url("http://h/v1/chat/completions").endpoint().path == "/v1/chat/completions");
  CHECK(JudgeClient::from_url("http://h/v1?key=x").endpoint().path == "/v1/chat/completions?key=x");
  CHECK(contains(error_of([] { JudgeClient::from_url("http://h/", {.samples = 0}); }), "samples must be at least 1"));
  CHECK(contains(error_of([] { JudgeClient::from_url("http://h/", {.scale = 1}); }), "scale must be at least 2"));
}

TEST_CASE("scores parsed from judge replies") {
  CHECK(parse_judge_score("The answer is right. Score: 8") == 8.0);
  CHECK(parse_judge_score("**Score:** 7/10") == 7.0);
  CHECK(parse_judge_score("I would rate it 6 out of 10.") == 6.0);
  CHECK(parse_judge_score(" 9\n") == 9.0);
  CHECK(parse_judge_score("{\"score\": 4, \"reason\": \"partly wrong\"}") == 4.0);
  CHECK(parse_judge_score("{\"reason\": \"ok\", \"score\": \"5\"}") == 5.0);
  CHECK(parse_judge_score("Correctness score (1-10): 8") == 8.0);
  CHECK(parse_judge_score("On a scale from 1 to 10 the score is 3.") == 3.0);
  CHECK(parse_judge_score("Rating: 8.5") == 8.5);
  CHECK(parse_judge_score("It mentions 1889 and 1900 correctly.\nFinal score: 5") == 5.0);
  CHECK(parse_judge_score("GPT4 score: 7") == 7.0);  // "GPT4" is a word, not a number
  CHECK_FALSE(parse_judge_score("It matches all 10 criteria of the prompt.").has_value());
  CHECK_FALSE(parse_judge_score("I give it a 7").has_value());                   // no label: not taken
  CHECK_FALSE(parse_judge_score("It avoids generating 3 claims.").has_value());  // "rating" inside a word
  CHECK(parse_judge_score("Score: 4\nScore: 6") == 6.0);                         // the last score line
  CHECK(parse_judge_score("Score: 3", 5) == 3.0);
  CHECK_FALSE(parse_judge_score("I cannot judge this answer.").has_value());
  CHECK_FALSE(parse_judge_score("Score: 11").has_value());
  CHECK_FALSE(parse_judge_score("Score: 0").has_value());
  CHECK_FALSE(parse_judge_score("Score: 7", 5).has_value());
  CHECK_FALSE(parse_judge_score("It has 3 facts and 2 errors.").has_value());  // two candidates
  CHECK_FALSE(parse_judge_score("").has_value());
}

TEST_CASE("requests: method, path, headers and JSON body; scores averaged and normalized") {
  TestServer server([](const Received& r, int) {
    const auto body = nlohmann::json::parse(r.body);
    const std::string user = body["messages"][1]["content"];
    static std::atomic<int> correctness_calls{0};
    if (contains(user, "Correctness (1-10)")) {
      const int k = correctness_calls++ % 3;
      return ok("Mostly right.\nScore: " + std::to_string(8 + k));  // 8, 9, 10
    }
    return ok("It follows the prompt.\n**Score:** 6/10");
  });
  const auto judge = JudgeClient::from_url(
      server.base_url(), {.model = "tiny-judge", .api_key = "secret", .temperature = 0.5, .samples = 3});
  const auto s =
      judge.score("What is the capital of France? Answer in one sentence.", "The capital of France is Paris.", "Paris");
  CHECK(s.correctness.scores == std::vector<double>{8, 9, 10});
  CHECK(s.correctness.unparsed == 0);
  CHECK(s.correctness.mean == doctest::Approx(9.0));
  CHECK(s.correctness.value == doctest::Approx(8.0 / 9.0));
  CHECK(s.prompt_alignment.scores == std::vector<double>{6, 6, 6});
  CHECK(s.prompt_alignment.value == doctest::Approx(5.0 / 9.0));

  const auto got = server.received();
  REQUIRE(got.size() == 6);
  for (const auto& r : got) {
    CHECK(r.method == "POST");
    CHECK(r.target == "/v1/chat/completions");
    CHECK(r.version == "HTTP/1.1");
    CHECK(r.header("host") == "127.0.0.1:" + std::to_string(server.port()));
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.header("authorization") == "Bearer secret");
    CHECK(r.header("content-length") == std::to_string(r.body.size()));
    CHECK(r.header("connection") == "close");
    const auto body = nlohmann::json::parse(r.body);
    CHECK(body["model"] == "tiny-judge");
    CHECK(body["temperature"].get<double>() == 0.5);
    CHECK(body["stream"] == false);
    CHECK(body["max_tokens"] == 512);
    REQUIRE(body["messages"].size() == 2);
    CHECK(body["messages"][0]["role"] == "system");
    CHECK(body["messages"][0]["content"] == judge.options().system_prompt);
    CHECK(body["messages"][1]["role"] == "user");
    const std::string user = body["messages"][1]["content"];
    CHECK(contains(user, "Prompt:\nWhat is the capital of France? Answer in one sentence.\n"));
    CHECK(contains(user, "Reference answer:\nParis\n"));
    CHECK(contains(user, "Answer:\nThe capital of France is Paris.\n"));
    CHECK(contains(user, "\"Score: N\", where N is an integer from 1 to 10"));
  }
  CHECK(
      contains(nlohmann::json::parse(got[0].body)["messages"][1]["content"].get<std::string>(), "Correctness (1-10)"));
  CHECK(contains(nlohmann::json::parse(got[5].body)["messages"][1]["content"].get<std::string>(),
                 "Prompt alignment (1-10)"));

  // Without a reference the rubric has no reference section.
  const auto one = JudgeClient::from_url(server.base_url(), {.samples = 1});
  one.score(ordo::eval::JudgeCriterion::relevance(), "Say hi.", "Hi!");
  const auto last = server.received().back();
  const std::string user = nlohmann::json::parse(last.body)["messages"][1]["content"];
  CHECK_FALSE(contains(user, "Reference answer"));
  CHECK(contains(user, "Relevance (1-10)"));
  CHECK(nlohmann::json::parse(last.body)["model"] == "judge");
}

TEST_CASE("the API key comes from ORDO_JUDGE_API_KEY; the judge is off without ORDO_JUDGE_URL") {
  TestServer server([](const Received&, int) { return ok("Score: 5"); });
  {
    ScopedEnv key("ORDO_JUDGE_API_KEY", "from-env");
    JudgeClient::from_url(server.base_url(), {.samples = 1}).score(ordo::eval::JudgeCriterion::correctness(), "p", "a");
  }
  {
    ScopedEnv key("ORDO_JUDGE_API_KEY", nullptr);
    JudgeClient::from_url(server.base_url(), {.samples = 1}).score(ordo::eval::JudgeCriterion::correctness(), "p", "a");
  }
  const auto got = server.received();
  REQUIRE(got.size() == 2);
  CHECK(got[0].header("authorization") == "Bearer from-env");
  CHECK_FALSE(got[1].has_header("authorization"));

  {
    ScopedEnv url("ORDO_JUDGE_URL", nullptr);
    CHECK_FALSE(JudgeClient::from_env().has_value());
  }
  ScopedEnv url("ORDO_JUDGE_URL", server.base_url().c_str());
  ScopedEnv model("ORDO_JUDGE_MODEL", "env-model");
  const auto judge = JudgeClient::from_env();
  REQUIRE(judge.has_value());
  CHECK(judge->options().model == "env-model");
  CHECK(judge->endpoint().path == "/v1/chat/completions");
}

TEST_CASE("replies without a score are counted; none at all is an error") {
  TestServer server(
      [](const Received&, int index) { return ok(index % 2 == 0 ? "I cannot judge this." : "Score: 4"); });
  const auto judge = JudgeClient::from_url(server.base_url(), {.samples = 4});
  const auto s = judge.score(ordo::eval::JudgeCriterion::correctness(), "p", "a");
  CHECK(s.scores == std::vector<double>{4, 4});
  CHECK(s.unparsed == 2);
  CHECK(s.value == doctest::Approx(3.0 / 9.0));

  TestServer silent([](const Received&, int) { return ok("This answer is fine, I think."); });
  const auto err = error_of([&] { JudgeClient::from_url(silent.base_url(), {.samples = 2}).score("p", "a"); });
  CHECK(err == "POST " + silent.base_url() +
                   "/chat/completions: no Correctness score (1-10) in any of the 2 "
                   "replies; the last one: \"This answer is fine, I think.\"");
}

TEST_CASE("chunked bodies and bodies read to the end of the connection") {
  const std::string body = completion_json("Looks correct. Score: 7");
  for (const std::size_t size : {std::size_t{1}, std::size_t{7}, std::size_t{64}, body.size()}) {
    TestServer server([&](const Received&, int) { return chunked_response(body, size); });
    const auto s = JudgeClient::from_url(server.base_url(), {.samples = 1})
                       .score(ordo::eval::JudgeCriterion::correctness(), "p", "a");
    CHECK_MESSAGE(s.scores == std::vector<double>{7}, "chunks of " << size);
  }
  TestServer until_close([&](const Received&, int) {
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body;  // no length: read to the end
  });
  CHECK(JudgeClient::from_url(until_close.base_url(), {.samples = 1})
            .complete(std::vector<ordo::eval::JudgeMessage>{{"user", "x"}}) == "Looks correct. Score: 7");
  TestServer continue_first(
      [&](const Received&, int) { return "HTTP/1.1 100 Continue\r\n\r\n" + http_response(200, "OK", body); });
  CHECK(JudgeClient::from_url(continue_first.base_url(), {.samples = 1})
            .complete(std::vector<ordo::eval::JudgeMessage>{{"user", "x"}}) == "Looks correct. Score: 7");
}

TEST_CASE("HTTP errors name the URL, the status and the body") {
  const std::vector<ordo::eval::JudgeMessage> msg{{"user", "x"}};
  TestServer failing([](const Received&, int) {
    return http_response(500, "Internal Server Error", "{\"error\":{\"message\":\"model crashed\"}}");
  });
  CHECK(error_of([&] { JudgeClient::from_url(failing.base_url(), {}).complete(msg); }) ==
        "POST " + failing.base_url() +
            "/chat/completions: HTTP 500 Internal Server Error: {\"error\":{\"message\":\"model crashed\"}}");

  TestServer unauthorized(
      [](const Received&, int) { return http_response(401, "Unauthorized", "invalid key", "text/plain"); });
  {
    ScopedEnv key("ORDO_JUDGE_API_KEY", nullptr);
    CHECK(error_of([&] { JudgeClient::from_url(unauthorized.base_url(), {}).complete(msg); }) ==
          "POST " + unauthorized.base_url() +
              "/chat/completions: HTTP 401 Unauthorized (no API key sent: set "
              "ORDO_JUDGE_API_KEY): invalid key");
    CHECK(error_of([&] { JudgeClient::from_url(unauthorized.base_url(), {.api_key = "wrong"}).complete(msg); }) ==
          "POST " + unauthorized.base_url() +
              "/chat/completions: HTTP 401 Unauthorized (check ORDO_JUDGE_API_KEY): invalid key");
  }
}

TEST_CASE("malformed responses") {
  const std::vector<ordo::eval::JudgeMessage> msg{{"user", "x"}};
  const auto error_with = [&](std::string raw) {
    TestServer server([raw](const Received&, int) { return raw; });
    return error_of([&] { JudgeClient::from_url(server.base_url(), {}).complete(msg); });
  };
  CHECK(contains(error_with(http_response(200, "OK", "{\"choices\": [")),
                 "/chat/completions: the response is not valid JSON: {\"choices\": ["));
  CHECK(contains(error_with(http_response(200, "OK", "<html>busy</html>", "text/html")),
                 "the response is not valid JSON: <html>busy</html>"));
  CHECK(contains(error_with(http_response(200, "OK", "{\"choices\": []}")),
                 "the response has no choices[0].message.content string: {\"choices\": []}"));
  CHECK(contains(error_with(http_response(200, "OK", "{\"choices\": [{\"message\": {\"content\": null}}]}")),
                 "no choices[0].message.content string"));
  CHECK(contains(error_with(http_response(200, "OK", "{\"error\": {\"message\": \"overloaded\"}}")),
                 "the server reports an error: {\"message\":\"overloaded\"}"));
  CHECK(contains(error_with("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"choices\""),
                 "the connection closed after 10 of 100 body bytes"));
  CHECK(contains(error_with("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n{}"), "malformed Content-Length \"1x\""));
  CHECK(contains(error_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
                 "malformed chunk size \"zz\""));
  CHECK(contains(error_with("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
                 "the connection closed inside a chunk"));
  CHECK(contains(error_with("SSH-2.0-OpenSSH\r\n\r\n"), "not an HTTP response: \"SSH-2.0-OpenSSH\""));
  CHECK(contains(error_with(""), "the connection closed before a response"));
}

TEST_CASE("a refused connection and a timeout") {
  const std::vector<ordo::eval::JudgeMessage> msg{{"user", "x"}};
  const int port = closed_port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  CHECK(error_of([&] { JudgeClient::from_url(url, {}).complete(msg); }) ==
        "POST " + url + "/chat/completions: cannot connect to 127.0.0.1:" + std::to_string(port) +
            " (Connection refused)");

  TestServer slow([](const Received&, int) { return ok("Score: 5"); }, 5000ms);
  const auto start = std::chrono::steady_clock::now();
  const auto err = error_of([&] { JudgeClient::from_url(slow.base_url(), {.timeout = 300ms}).complete(msg); });
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(err ==
        "POST " + slow.base_url() + "/chat/completions: timed out after 300 ms (waiting for the response headers)");
  CHECK(took >= 290ms);
  CHECK(took < 3000ms);

  CHECK(contains(error_of([] {
                   JudgeClient::from_url("http://no-such-host.invalid/v1", {})
                       .complete(std::vector<ordo::eval::JudgeMessage>{{"user", "x"}});
                 }),
                 "cannot resolve host 'no-such-host.invalid'"));
}

TEST_SUITE_END();

// A real judge at $ORDO_JUDGE_URL (e.g. llama-cpp-python's server): a plain completion, one
// rubric reply, and the scores of a right and a wrong answer, printed. A small judge may leave
// out the score line; the test needs a score in at least one of its 20 rubric replies. Skipped
// without ORDO_JUDGE_URL.
TEST_CASE("a live judge" * doctest::test_suite("live")) {
  auto judge = JudgeClient::from_env({.samples = 5});
  if (!judge) skip_test("ORDO_JUDGE_URL is not set: no judge server to test against");
  const std::string prompt = "What is the capital of France? Answer in one sentence.";
  const std::vector<ordo::eval::JudgeMessage> ping{{"user", "Reply with the single word: ready"}};
  MESSAGE("endpoint " << judge->endpoint().text << "; a plain completion: \"" << judge->complete(ping) << "\"");
  const std::vector<ordo::eval::JudgeMessage> rubric{
      {"system", judge->options().system_prompt},
      {"user",
       judge->rubric(ordo::eval::JudgeCriterion::correctness(), prompt, "The capital of France is Paris.", "Paris")}};
  const auto reply = judge->complete(rubric);
  const auto parsed = parse_judge_score(reply);
  MESSAGE("a correctness reply: \"" << reply << "\" -> " << (parsed ? std::to_string(*parsed) : "no score"));
  int scored = 0;
  for (const std::string answer : {"The capital of France is Paris.", "The capital of France is Berlin."}) {
    for (const auto& criterion :
         {ordo::eval::JudgeCriterion::correctness(), ordo::eval::JudgeCriterion::prompt_alignment()}) {
      try {
        const auto s = judge->score(criterion, prompt, answer, std::string_view("Paris"));
        std::string list;
        for (const double x : s.scores) list += std::to_string(x).substr(0, 4) + " ";
        MESSAGE("\"" << answer << "\" " << criterion.name << ": " << s.value << " (scores " << list << "; unparsed "
                     << s.unparsed << ")");
        CHECK((s.value >= 0 && s.value <= 1));
        scored += static_cast<int>(s.scores.size());
      } catch (const ordo::eval::JudgeError& e) {
        const std::string what = e.what();
        REQUIRE_MESSAGE(contains(what, "in any of the 5 replies"), what);  // only a missing score is tolerated
        MESSAGE("\"" << answer << "\" " << criterion.name << ": " << what);
      }
    }
  }
  CHECK(scored >= 1);
}

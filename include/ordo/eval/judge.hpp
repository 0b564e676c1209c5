// ordo/eval/judge.hpp — LLM-as-judge scores (G-Eval style) from an OpenAI-compatible
// chat-completions server, over plain HTTP/1.1. Torch-free; POSIX sockets and nlohmann-json.
//
// The paper scores answers with a judge model: G-Eval (Liu et al., 2023) for correctness, and a
// prompt-alignment metric. ordo asks the judge, for one criterion at a time, a rubric prompt
// (task, criterion, evaluation steps, then the prompt, the optional reference answer and the
// answer) that ends by asking for a last line "Score: N" with N an integer from 1 to `scale`.
// It samples the judge `samples` times (temperature `temperature`), parses the score of each
// reply, and reports the mean of the parsed scores mapped to [0, 1] as (mean - 1) / (scale - 1).
//
//   auto judge = ordo::eval::JudgeClient::from_url("http://127.0.0.1:8081/v1", {.model = "judge"});
//   auto s = judge.score(prompt, answer, reference);   // s.correctness.value, s.prompt_alignment.value
//
// Off by default: JudgeClient::from_env() gives a client only when ORDO_JUDGE_URL is set (with
// ORDO_JUDGE_MODEL, optional). The API key, when the server wants one, is read from
// ORDO_JUDGE_API_KEY and sent as "Authorization: Bearer <key>".
//
// Transport: http:// URLs only (host, optional port, default 80, path; IPv6 literals in
// brackets); the endpoint is the URL's path + "/chat/completions" (a URL that already ends in
// /chat/completions is used as it is). HTTPS is not supported (no TLS library): a https:// URL is
// an error that says so. One connection per request ("Connection: close"); responses with
// Content-Length, chunked transfer encoding, or neither (read to the end) are accepted. The
// timeout covers a whole request, from connecting to the last byte. Errors are JudgeError and
// name the URL, and the HTTP status and an excerpt of the body where there is one.
//
// Score parsing (parse_judge_score), in this order: a JSON object's "score"; the last "score"
// (or "rating") followed by a number ("Score: 8", "**Rating**: 7/10"); "N/scale" or "N out of
// scale"; a reply that is only a number. Other numbers are not taken for a score, and a number
// outside 1..scale is none. Replies without a score are counted (`unparsed`) and left out
// of the mean; a criterion with no score in any reply is an error that quotes the last reply.
#pragma once

#include <algorithm>    // std::min, std::transform
#include <cctype>       // std::tolower, std::isalnum, std::isalpha
#include <cerrno>       // errno
#include <chrono>       // std::chrono::steady_clock, milliseconds
#include <cmath>        // std::isfinite
#include <cstdint>      // std::uint16_t
#include <cstdlib>      // std::getenv, std::strtod
#include <cstring>      // std::strerror
#include <optional>     // std::optional
#include <span>         // std::span
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <utility>      // std::pair, std::move
#include <vector>       // std::vector

#include <fcntl.h>       // fcntl, O_NONBLOCK
#include <netdb.h>       // getaddrinfo, freeaddrinfo, gai_strerror
#include <poll.h>        // poll
#include <sys/socket.h>  // socket, connect, send, recv, getsockopt
#include <unistd.h>      // close

#include <nlohmann/json.hpp>  // nlohmann::json

namespace ordo::eval {

/// A failed judge request: transport, HTTP status, response format, or no score in the replies.
class JudgeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace http {

/// An http:// URL split into its parts.
struct Url {
  std::string host;  ///< name or address (IPv6 without brackets)
  std::uint16_t port = 80;
  std::string path = "/";  ///< with the query, if any
  std::string text;        ///< the URL as given, for messages
};

inline Url parse_url(std::string_view url) {
  const std::string text(url);
  const auto fail = [&](const std::string& why) { return JudgeError(text + ": " + why); };
  std::string lower(url.substr(0, 8));
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.rfind("https://", 0) == 0)
    throw fail("HTTPS is not supported: ordo's judge client speaks plain HTTP/1.1 only (no TLS); use an http:// "
               "URL of a local server, or a local proxy that forwards to the HTTPS endpoint");
  if (lower.rfind("http://", 0) != 0) throw fail("not an http:// URL");
  std::string_view rest = url.substr(7);
  const auto slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (const auto hash = path.find('#'); hash != std::string::npos) path.resize(hash);
  if (path.empty() || path[0] != '/') path.insert(path.begin(), '/');
  if (authority.find('@') != std::string_view::npos)
    throw fail("user information in the URL is not supported; the API key is read from ORDO_JUDGE_API_KEY");
  Url u;
  u.text = text;
  u.path = path;
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) throw fail("unterminated IPv6 address");
    u.host = std::string(authority.substr(1, close - 1));
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') throw fail("unexpected text after the IPv6 address");
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty()) throw fail("no host");
  if (!port_text.empty() || authority.back() == ':') {
    unsigned long port = 0;
    for (const char c : port_text) {
      if (c < '0' || c > '9') throw fail("the port is not a number");
      port = port * 10 + static_cast<unsigned long>(c - '0');
      if (port > 65535) break;
    }
    if (port_text.empty() || port == 0 || port > 65535) throw fail("the port must be within 1..65535");
    u.port = static_cast<std::uint16_t>(port);
  }
  return u;
}

struct Response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names in lower case
  std::string body;

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return std::nullopt;
  }
};

namespace detail {

inline std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

/// A socket closed on scope exit.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Socket() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

using clock = std::chrono::steady_clock;

/// Milliseconds left until `deadline` (at least 0), for poll.
inline int remaining_ms(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace detail

/// Sends one request and reads the whole response. `timeout` covers the whole exchange.
inline Response request(const Url& url, std::string_view method, std::span<const std::pair<std::string, std::string>> headers,
                        std::string_view body, std::chrono::milliseconds timeout) {
  using namespace detail;
  const std::string where = std::string(method) + " " + url.text;
  const auto deadline = clock::now() + timeout;
  const auto timed_out = [&](const char* what) {
    return JudgeError(where + ": timed out after " + std::to_string(timeout.count()) + " ms (" + what + ")");
  };

  // Connect: each address of the host in turn, without blocking past the deadline.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  if (const int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw JudgeError(where + ": cannot resolve host '" + url.host + "' (" + ::gai_strerror(rc) + ")");
  Socket sock;
  std::string connect_error = "no address";
  for (addrinfo* a = found; a && sock.get() < 0; a = a->ai_next) {
    Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (s.get() < 0) {
      connect_error = std::strerror(errno);
      continue;
    }
    ::fcntl(s.get(), F_SETFL, ::fcntl(s.get(), F_GETFL, 0) | O_NONBLOCK);
    if (::connect(s.get(), a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        connect_error = std::strerror(errno);
        continue;
      }
      pollfd p{s.get(), POLLOUT, 0};
      const int ready = ::poll(&p, 1, remaining_ms(deadline));
      if (ready == 0) {
        ::freeaddrinfo(found);
        throw timed_out("connecting");
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (ready < 0 || ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        connect_error = std::strerror(ready < 0 ? errno : err);
        continue;
      }
    }
    sock = std::move(s);
  }
  ::freeaddrinfo(found);
  if (sock.get() < 0)
    throw JudgeError(where + ": cannot connect to " + url.host + ":" + port + " (" + connect_error + ")");

  // Send the request.
  std::string head = std::string(method) + " " + url.path + " HTTP/1.1\r\n";
  const bool ipv6 = url.host.find(':') != std::string::npos;
  head += "Host: " + (ipv6 ? "[" + url.host + "]" : url.host) + (url.port == 80 ? "" : ":" + port) + "\r\n";
  for (const auto& [k, v] : headers) head += k + ": " + v + "\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  head.append(body);
  for (std::size_t sent = 0; sent < head.size();) {
    pollfd p{sock.get(), POLLOUT, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready == 0) throw timed_out("sending the request");
    const auto n = ::send(sock.get(), head.data() + sent, head.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      throw JudgeError(where + ": sending the request failed (" + std::strerror(errno) + ")");
    }
    sent += static_cast<std::size_t>(n);
  }

  // Read until the end of the response (the server closes the connection), or until the body
  // is complete by its length or its last chunk.
  constexpr std::size_t max_response = 64u << 20;
  std::string in;
  bool eof = false;
  const auto read_more = [&](const char* what) {
    if (eof) return false;
    pollfd p{sock.get(), POLLIN, 0};
    for (;;) {
      const int ready = ::poll(&p, 1, remaining_ms(deadline));
      if (ready == 0) throw timed_out(what);
      char buffer[16384];
      const auto n = ::recv(sock.get(), buffer, sizeof buffer, 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        throw JudgeError(where + ": reading the response failed (" + std::strerror(errno) + ")");
      }
      if (n == 0) {
        eof = true;
        return false;
      }
      in.append(buffer, static_cast<std::size_t>(n));
      if (in.size() > max_response) throw JudgeError(where + ": the response is larger than 64 MiB");
      return true;
    }
  };

  Response r;
  std::size_t header_end = std::string::npos;
  for (;;) {  // the status line and headers; 1xx responses are skipped
    while ((header_end = in.find("\r\n\r\n")) == std::string::npos)
      if (!read_more("waiting for the response headers"))
        throw JudgeError(where + ": the connection closed " +
                         (in.empty() ? std::string("before a response") : "inside the response headers"));
    const std::string_view block(in.data(), header_end);
    const auto line_end = block.find("\r\n");
    const std::string_view status_line = block.substr(0, line_end);
    if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12 || status_line[8] != ' ')
      throw JudgeError(where + ": not an HTTP response: \"" + std::string(status_line.substr(0, 80)) + "\"");
    r.status = 0;
    for (std::size_t k = 9; k < 12; ++k) {
      if (status_line[k] < '0' || status_line[k] > '9')
        throw JudgeError(where + ": malformed status line \"" + std::string(status_line.substr(0, 80)) + "\"");
      r.status = r.status * 10 + (status_line[k] - '0');
    }
    r.reason = std::string(trim(status_line.substr(12)));
    r.headers.clear();
    std::string_view rest = line_end == std::string_view::npos ? std::string_view{} : block.substr(line_end + 2);
    while (!rest.empty()) {
      const auto eol = rest.find("\r\n");
      const auto line = rest.substr(0, eol);
      rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 2);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      r.headers.emplace_back(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
    }
    in.erase(0, header_end + 4);
    if (r.status >= 200 || r.status < 100) break;
  }

  const auto encoding = r.header("transfer-encoding");
  if (encoding && lower(*encoding).find("chunked") != std::string::npos) {
    std::size_t at = 0;  // position in `in` of the next chunk-size line
    for (;;) {
      std::size_t eol;
      while ((eol = in.find("\r\n", at)) == std::string::npos)
        if (!read_more("reading a chunked body")) throw JudgeError(where + ": the connection closed inside a chunked body");
      const std::string_view size_line(in.data() + at, eol - at);
      std::size_t size = 0, digits = 0;
      for (const char c : size_line) {
        const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0) break;  // chunk extensions (";name=value") or spaces follow
        if (++digits > 15) throw JudgeError(where + ": chunk size too large");
        size = size * 16 + static_cast<std::size_t>(v);
      }
      if (digits == 0) throw JudgeError(where + ": malformed chunk size \"" + std::string(size_line.substr(0, 40)) + "\"");
      const std::size_t data = eol + 2;
      if (size == 0) break;  // trailers, if any, are not needed
      while (in.size() < data + size + 2)
        if (!read_more("reading a chunked body")) throw JudgeError(where + ": the connection closed inside a chunk");
      if (in.compare(data + size, 2, "\r\n") != 0) throw JudgeError(where + ": a chunk does not end with CRLF");
      r.body.append(in, data, size);
      at = data + size + 2;
      if (r.body.size() > max_response) throw JudgeError(where + ": the response is larger than 64 MiB");
    }
  } else if (const auto length = r.header("content-length")) {
    std::size_t n = 0;
    if (length->empty() || length->find_first_not_of("0123456789") != std::string::npos || length->size() > 15)
      throw JudgeError(where + ": malformed Content-Length \"" + *length + "\"");
    n = static_cast<std::size_t>(std::stoull(*length));
    if (n > max_response) throw JudgeError(where + ": the response is larger than 64 MiB");
    while (in.size() < n)
      if (!read_more("reading the body"))
        throw JudgeError(where + ": the connection closed after " + std::to_string(in.size()) + " of " +
                         std::to_string(n) + " body bytes");
    r.body = in.substr(0, n);
  } else {
    while (read_more("reading the body")) {
    }
    r.body = std::move(in);
  }
  return r;
}

}  // namespace http

/// One evaluation criterion: its name, what it means, and how to judge it (G-Eval's "criteria"
/// and "evaluation steps").
struct JudgeCriterion {
  std::string name;
  std::string definition;
  std::vector<std::string> steps;

  /// Factual accuracy of the answer (G-Eval correctness, as the paper uses it).
  static JudgeCriterion correctness() {
    return {"Correctness",
            "the answer is factually accurate: what it states is true and answers the question; where a "
            "reference answer is given, the answer agrees with it (other wording is fine, contradicting it or "
            "missing its key facts is not).",
            {"Read the prompt and, if given, the reference answer; note the facts a correct answer must contain.",
             "Check each claim of the answer against the reference answer and well-established knowledge.",
             "Lower the score for every wrong, contradicting or invented claim, and for missing key facts.",
             "Give 1 to an answer that is wrong or says nothing relevant, and the highest score only to an answer "
             "that is fully correct."}};
  }
  /// Whether the answer is about what was asked (the paper's second G-Eval criterion).
  static JudgeCriterion relevance() {
    return {"Relevance",
            "the answer addresses the question that was asked and stays on topic, without padding or "
            "unrelated material.",
            {"Read the prompt and identify what it asks for.",
             "Check whether each part of the answer serves that request.",
             "Lower the score for off-topic, repeated or filler content, and for ignoring parts of the question."}};
  }
  /// How well the answer follows the instructions of the prompt (prompt alignment).
  static JudgeCriterion prompt_alignment() {
    return {"Prompt alignment",
            "the answer follows every instruction in the prompt: it does the task that was asked, in the "
            "requested form (format, length, language, style), and respects any constraint the prompt sets.",
            {"List the instructions and constraints the prompt gives, explicit or clearly implied.",
             "Check for each one whether the answer follows it.",
             "Give the highest score only when all are followed, and 1 when the answer ignores the prompt."}};
  }
};

/// Settings of a JudgeClient.
struct JudgeOptions {
  std::string model;            ///< the "model" field of each request ("" sends "judge")
  std::string api_key;          ///< "" reads ORDO_JUDGE_API_KEY; no header when both are empty
  double temperature = 1.0;     ///< G-Eval samples the judge at temperature 1
  int samples = 5;              ///< replies per criterion, averaged
  int scale = 10;               ///< scores are integers 1..scale
  int max_tokens = 512;         ///< the judge's reply budget
  std::chrono::milliseconds timeout{120000};  ///< per request
  std::string system_prompt =
      "You are a careful, impartial evaluator of answers written by AI assistants. You follow the rubric "
      "exactly and end your reply with the score line it asks for.";
};

/// The score of one criterion.
struct CriterionScore {
  double value = 0;          ///< (mean - 1) / (scale - 1), in [0, 1]
  double mean = 0;           ///< mean of the parsed scores, in [1, scale]
  std::vector<double> scores;  ///< the parsed scores
  int unparsed = 0;          ///< replies without a score
};

/// The paper's two judge metrics for one answer.
struct JudgeScores {
  CriterionScore correctness;
  CriterionScore prompt_alignment;
};

namespace judge_detail {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// Numbers in `s`: (position, end, value); a number is digits with an optional fraction, not
/// part of a word ("GPT4", "v2").
inline std::vector<std::pair<std::size_t, double>> numbers(std::string_view s, std::vector<std::size_t>* ends = nullptr) {
  std::vector<std::pair<std::size_t, double>> out;
  for (std::size_t i = 0; i < s.size();) {
    if (!is_digit(s[i]) || (i > 0 && (std::isalnum(static_cast<unsigned char>(s[i - 1])) || s[i - 1] == '.'))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
      ++j;
      while (j < s.size() && is_digit(s[j])) ++j;
    }
    if (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) {  // "3rd", "10x"
      i = j;
      continue;
    }
    out.emplace_back(i, std::strtod(std::string(s.substr(i, j - i)).c_str(), nullptr));
    if (ends) ends->push_back(j);
    i = j;
  }
  return out;
}

inline std::string lower(std::string_view s) { return http::detail::lower(s); }

}  // namespace judge_detail

/// The score in a judge's reply (see the header comment), or nullopt. Fractional scores
/// ("8.5") are accepted.
inline std::optional<double> parse_judge_score(std::string_view reply, int scale = 10) {
  using namespace judge_detail;
  const auto valid = [&](double v) -> std::optional<double> {
    if (!std::isfinite(v) || v < 1 || v > scale) return std::nullopt;
    return v;
  };
  std::string text = lower(reply);
  // The scale itself ("(1-10)", "1 to 10") is not a score.
  const std::string n = std::to_string(scale);
  for (const std::string& range : {"(1-" + n + ")", "(1 - " + n + ")", "(1 to " + n + ")", "1-" + n, "1 - " + n,
                                  "1 to " + n}) {
    for (auto at = text.find(range); at != std::string::npos; at = text.find(range, at))
      text.replace(at, range.size(), " ");
  }
  // A JSON object with a "score".
  for (auto open = text.find('{'); open != std::string::npos; open = text.find('{', open + 1)) {
    const auto close = text.find('}', open);
    if (close == std::string::npos) break;
    const auto j = nlohmann::json::parse(text.substr(open, close - open + 1), nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("score")) {
      const auto& s = j["score"];
      if (s.is_number()) return valid(s.get<double>());
      if (s.is_string()) {
        const auto n = numbers(s.get<std::string>());
        if (n.size() == 1) return valid(n[0].second);
      }
    }
  }
  std::vector<std::size_t> ends;
  const auto nums = numbers(text, &ends);
  // The last "score" / "rating" label followed (after ':', '*', '=', spaces, "is") by a number.
  std::optional<std::size_t> label_end;
  for (const std::string_view label : {"score", "rating"}) {
    for (auto at = text.find(label); at != std::string::npos; at = text.find(label, at + 1)) {
      if (at > 0 && std::isalpha(static_cast<unsigned char>(text[at - 1]))) continue;  // "generating"
      if (!label_end || at + label.size() > *label_end) label_end = at + label.size();
    }
  }
  if (label_end) {
    for (const auto& [pos, value] : nums) {
      if (pos < *label_end) continue;
      std::string_view between(text.data() + *label_end, pos - *label_end);
      bool plain = between.size() <= 24;
      std::string rest(between);
      for (const std::string_view filler : {"is", "of", "final", "overall"}) {
        for (auto at = rest.find(filler); at != std::string::npos; at = rest.find(filler)) rest.erase(at, filler.size());
      }
      for (const char c : rest)
        if (!(c == ' ' || c == ':' || c == '*' || c == '=' || c == '#' || c == '\t' || c == '\n' || c == '(' ||
              c == '[' || c == '"' || c == '-' || c == '_'))
          plain = false;
      if (plain) return valid(value);
      break;
    }
  }
  // "N/scale", "N out of scale".
  for (std::size_t k = 0; k + 1 < nums.size(); ++k) {
    const auto [pos, value] = nums[k];
    std::string_view between(text.data() + ends[k], nums[k + 1].first - ends[k]);
    const auto t = http::detail::trim(between);
    if ((t == "/" || t == "out of") && nums[k + 1].second == scale) return valid(value);
  }
  // A reply that is only a number. Any other number ("all 10 criteria") is not taken as a score.
  if (nums.size() == 1 && http::detail::trim(text).size() <= 8) return valid(nums[0].second);
  return std::nullopt;
}

/// A message of a chat request.
struct JudgeMessage {
  std::string role;
  std::string content;
};

/// Client of an OpenAI-compatible chat-completions endpoint, used as a judge.
class JudgeClient {
 public:
  /// `base_url`: e.g. "http://127.0.0.1:8081/v1" (requests go to <base>/chat/completions).
  static JudgeClient from_url(std::string_view base_url, JudgeOptions options = {}) {
    JudgeClient c;
    auto url = http::parse_url(base_url);
    std::string path = url.path;
    const auto query = path.find('?');
    std::string tail = query == std::string::npos ? "" : path.substr(query);
    if (query != std::string::npos) path.resize(query);
    const std::string endpoint = "/chat/completions";
    if (!(path.size() >= endpoint.size() && path.compare(path.size() - endpoint.size(), endpoint.size(), endpoint) == 0)) {
      while (!path.empty() && path.back() == '/') path.pop_back();
      path += endpoint;
    }
    url.path = path + tail;
    url.text = "http://" + (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) + ":" +
               std::to_string(url.port) + url.path;
    if (options.samples < 1) throw JudgeError("ordo::eval::JudgeClient: samples must be at least 1");
    if (options.scale < 2) throw JudgeError("ordo::eval::JudgeClient: scale must be at least 2");
    if (options.api_key.empty())
      if (const char* key = std::getenv("ORDO_JUDGE_API_KEY"); key && *key) options.api_key = key;
    c.url_ = std::move(url);
    c.options_ = std::move(options);
    return c;
  }

  /// A client from ORDO_JUDGE_URL (and ORDO_JUDGE_MODEL), or nullopt when ORDO_JUDGE_URL is not
  /// set: the judge metrics are off by default.
  static std::optional<JudgeClient> from_env(JudgeOptions options = {}) {
    const char* url = std::getenv("ORDO_JUDGE_URL");
    if (!url || !*url) return std::nullopt;
    if (const char* model = std::getenv("ORDO_JUDGE_MODEL"); model && *model && options.model.empty())
      options.model = model;
    return from_url(url, std::move(options));
  }

  const http::Url& endpoint() const { return url_; }
  const JudgeOptions& options() const { return options_; }

  /// The request body for `messages`.
  nlohmann::json request_body(std::span<const JudgeMessage> messages) const {
    nlohmann::json m = nlohmann::json::array();
    for (const auto& x : messages) m.push_back({{"role", x.role}, {"content", x.content}});
    return {{"model", options_.model.empty() ? "judge" : options_.model},
            {"messages", std::move(m)},
            {"temperature", options_.temperature},
            {"max_tokens", options_.max_tokens},
            {"stream", false}};
  }

  /// One chat completion: the content of the first choice's message.
  std::string complete(std::span<const JudgeMessage> messages) const {
    std::vector<std::pair<std::string, std::string>> headers{{"Content-Type", "application/json"},
                                                             {"Accept", "application/json"},
                                                             {"User-Agent", "ordo-judge"}};
    if (!options_.api_key.empty()) headers.emplace_back("Authorization", "Bearer " + options_.api_key);
    const std::string body = request_body(messages).dump();
    const auto r = http::request(url_, "POST", headers, body, options_.timeout);
    const std::string where = "POST " + url_.text;
    const auto excerpt = [](const std::string& s) {
      std::string e = s.substr(0, 300);
      for (auto& ch : e)
        if (ch == '\n' || ch == '\r') ch = ' ';
      return e + (s.size() > 300 ? "..." : "");
    };
    if (r.status < 200 || r.status > 299) {
      std::string msg = where + ": HTTP " + std::to_string(r.status) + (r.reason.empty() ? "" : " " + r.reason);
      if (r.status == 401 || r.status == 403)
        msg += options_.api_key.empty() ? " (no API key sent: set ORDO_JUDGE_API_KEY)" : " (check ORDO_JUDGE_API_KEY)";
      if (!r.body.empty()) msg += ": " + excerpt(r.body);
      throw JudgeError(msg);
    }
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded()) throw JudgeError(where + ": the response is not valid JSON: " + excerpt(r.body));
    if (j.is_object() && j.contains("error")) throw JudgeError(where + ": the server reports an error: " + excerpt(j["error"].dump()));
    const nlohmann::json* content = nullptr;
    if (j.is_object() && j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
      const auto& choice = j["choices"][0];
      if (choice.is_object() && choice.contains("message") && choice["message"].is_object() &&
          choice["message"].contains("content"))
        content = &choice["message"]["content"];
    }
    if (!content || !content->is_string())
      throw JudgeError(where + ": the response has no choices[0].message.content string: " + excerpt(r.body));
    return content->get<std::string>();
  }

  /// The rubric prompt for one criterion (the user message; the system message is
  /// options().system_prompt).
  std::string rubric(const JudgeCriterion& c, std::string_view prompt, std::string_view answer,
                     std::optional<std::string_view> reference = std::nullopt) const {
    const std::string n = std::to_string(options_.scale);
    std::string s;
    s += "You will be given a prompt that was sent to an AI assistant";
    s += reference ? ", a reference answer," : "";
    s += " and the assistant's answer. Rate the answer on one criterion.\n\n";
    s += "Evaluation criterion:\n" + c.name + " (1-" + n + "): " + c.definition + "\n\nEvaluation steps:\n";
    for (std::size_t k = 0; k < c.steps.size(); ++k) s += std::to_string(k + 1) + ". " + c.steps[k] + "\n";
    s += std::to_string(c.steps.size() + 1) + ". Assign a score from 1 (worst) to " + n + " (best).\n\n";
    s += "Prompt:\n" + std::string(prompt) + "\n\n";
    if (reference) s += "Reference answer:\n" + std::string(*reference) + "\n\n";
    s += "Answer:\n" + std::string(answer) + "\n\n";
    s += "Explain your judgement in at most three sentences, then end with a line of the form \"Score: N\", where "
         "N is an integer from 1 to " + n + ".";
    return s;
  }

  /// One criterion, sampled options().samples times.
  CriterionScore score(const JudgeCriterion& c, std::string_view prompt, std::string_view answer,
                       std::optional<std::string_view> reference = std::nullopt) const {
    const std::vector<JudgeMessage> messages{{"system", options_.system_prompt},
                                             {"user", rubric(c, prompt, answer, reference)}};
    CriterionScore out;
    std::string last_reply;
    for (int k = 0; k < options_.samples; ++k) {
      last_reply = complete(messages);
      if (const auto s = parse_judge_score(last_reply, options_.scale)) out.scores.push_back(*s);
      else ++out.unparsed;
    }
    if (out.scores.empty()) {
      std::string quoted = last_reply.substr(0, 300);
      throw JudgeError("POST " + url_.text + ": no " + c.name + " score (1-" + std::to_string(options_.scale) +
                       ") in any of the " + std::to_string(options_.samples) + " replies; the last one: \"" +
                       quoted + (last_reply.size() > 300 ? "...\"" : "\""));
    }
    double sum = 0;
    for (const int s : out.scores) sum += s;
    out.mean = sum / static_cast<double>(out.scores.size());
    out.value = (out.mean - 1) / static_cast<double>(options_.scale - 1);
    return out;
  }

  /// Correctness and prompt alignment of `answer` to `prompt` (and `reference`, when given).
  JudgeScores score(std::string_view prompt, std::string_view answer,
                    std::optional<std::string_view> reference = std::nullopt) const {
    return {score(JudgeCriterion::correctness(), prompt, answer, reference),
            score(JudgeCriterion::prompt_alignment(), prompt, answer, reference)};
  }

 private:
  JudgeClient() = default;
  http::Url url_;
  JudgeOptions options_;
};

}  // namespace ordo::eval

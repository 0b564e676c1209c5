// ordo/eval/http_client.hpp — the LLM judge's HTTP/1.1 client (judge.hpp) on POSIX sockets:
// parse_url and request, in ordo::eval::http. Torch-free, no TLS.
//
//   auto url = ordo::eval::http::parse_url("http://127.0.0.1:8081/v1/chat/completions");
//   auto r = ordo::eval::http::request(url, "POST", headers, body, std::chrono::seconds(30));
//   // r.status, r.reason, r.header("content-type"), r.body
//
// http:// URLs only (host, optional port, default 80, path and query; IPv6 literals in
// brackets); a https:// URL is an error that says so. One connection per request
// ("Connection: close"); 1xx responses are skipped; a body with Content-Length, chunked
// transfer encoding, or neither (read to the end) is accepted, up to 64 MiB. The timeout covers
// the whole exchange, from connecting to the last byte. Every failure is a JudgeError that
// names the method and URL.
#pragma once

#include <algorithm>    // std::min, std::transform
#include <cctype>       // std::tolower
#include <cerrno>       // errno
#include <chrono>       // std::chrono::steady_clock, milliseconds
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint16_t
#include <cstring>      // std::strerror
#include <optional>     // std::optional
#include <span>         // std::span
#include <string>       // std::string, std::stoull
#include <string_view>  // std::string_view
#include <utility>      // std::pair, std::move
#include <vector>       // std::vector

#include <fcntl.h>       // fcntl, O_NONBLOCK
#include <netdb.h>       // getaddrinfo, freeaddrinfo, gai_strerror
#include <poll.h>        // poll
#include <sys/socket.h>  // socket, connect, send, recv, getsockopt
#include <unistd.h>      // close

#include <ordo/eval/judge_error.hpp>  // JudgeError

namespace ordo::eval::http {

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
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.rfind("https://", 0) == 0)
    throw fail(
        "HTTPS is not supported: ordo's judge client speaks plain HTTP/1.1 only (no TLS); use an http:// "
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
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
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
inline Response request(const Url& url, std::string_view method,
                        std::span<const std::pair<std::string, std::string>> headers, std::string_view body,
                        std::chrono::milliseconds timeout) {
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
        if (!read_more("reading a chunked body"))
          throw JudgeError(where + ": the connection closed inside a chunked body");
      const std::string_view size_line(in.data() + at, eol - at);
      std::size_t size = 0, digits = 0;
      for (const char c : size_line) {
        const int v = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (v < 0) break;  // chunk extensions (";name=value") or spaces follow
        if (++digits > 15) throw JudgeError(where + ": chunk size too large");
        size = size * 16 + static_cast<std::size_t>(v);
      }
      if (digits == 0)
        throw JudgeError(where + ": malformed chunk size \"" + std::string(size_line.substr(0, 40)) + "\"");
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

}  // namespace ordo::eval::http

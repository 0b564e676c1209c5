// ordo/io/atomic_write.hpp — write a file so that readers see the old file or the whole new one:
// a temporary file in the same directory, fsync, rename over the target, fsync the directory.
#pragma once

#include <cerrno>        // errno
#include <cstddef>       // std::byte, std::size_t
#include <cstdlib>       // mkstemp
#include <filesystem>    // std::filesystem::path
#include <functional>    // std::function
#include <span>          // std::span
#include <string>        // std::string
#include <system_error>  // std::system_error

#include <cstdio>  // std::rename

#include <fcntl.h>     // open
#include <sys/stat.h>  // fchmod
#include <unistd.h>    // write, fsync, close, unlink

namespace ordo::io {

/// Receives the bytes of a file being written atomically; `write` may be called many times.
class AtomicSink {
 public:
  explicit AtomicSink(int fd, const std::string& path) : fd_(fd), path_(path) {}

  void write(std::span<const std::byte> bytes) {
    const std::byte* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
      const ::ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), path_ + ": cannot write");
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
  const std::string& path_;
};

/// Calls `produce(sink)` to fill a temporary file `<target>.tmp.XXXXXX` beside `target`, then
/// makes it durable and renames it over `target`. If `produce` throws or any step fails the
/// temporary file is removed and `target` is untouched. The new file gets mode 0644.
inline void write_file_atomically(const std::filesystem::path& target,
                                  const std::function<void(AtomicSink&)>& produce) {
  const std::string final_path = target.string();
  std::string tmp = final_path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    throw std::system_error(errno, std::generic_category(), final_path + ": cannot create a temporary file beside it");
  auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::system_error(e, std::generic_category(), tmp + ": " + what);
  };
  try {
    AtomicSink sink(fd, tmp);
    produce(sink);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::fchmod(fd, 0644) != 0) fail("cannot set permissions");
  if (::fsync(fd) != 0) fail("cannot fsync");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw std::system_error(e, std::generic_category(), tmp + ": cannot close");
  }
  if (std::rename(tmp.c_str(), final_path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    throw std::system_error(e, std::generic_category(), final_path + ": cannot rename the temporary file over it");
  }
  // Make the rename itself durable. A directory that cannot be opened or synced (some
  // file systems) leaves the file complete; only durability across a power cut is weaker.
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace ordo::io

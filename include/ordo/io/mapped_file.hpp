// ordo/io/mapped_file.hpp — a read-only memory-mapped file (POSIX mmap): RAII, move-only.
#pragma once

#include <cerrno>        // errno
#include <cstddef>       // std::byte, std::size_t
#include <filesystem>    // std::filesystem::path
#include <span>          // std::span
#include <string>        // std::string
#include <system_error>  // std::system_error
#include <utility>       // std::exchange

#include <fcntl.h>     // open
#include <sys/mman.h>  // mmap, munmap
#include <sys/stat.h>  // fstat
#include <unistd.h>    // close

namespace ordo::io {

/// The bytes of a file, mapped read-only and shared; valid until the object is destroyed.
/// Moving keeps the mapping at the same address, so spans and string_views into `bytes()`
/// survive a move of the owner. An empty file maps to an empty span.
/// Opening fails with std::system_error whose message names the path.
class MappedFile {
 public:
  MappedFile() = default;

  explicit MappedFile(const std::filesystem::path& path) : path_(path.string()) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever; it is
    // refused below as not a regular file (for regular files the flag changes nothing).
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail("cannot open");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      errno = e;
      fail("cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      errno = EINVAL;
      fail("not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        errno = e;
        fail("cannot map");
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);  // the mapping keeps the file alive
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  MappedFile(MappedFile&& o) noexcept
      : path_(std::move(o.path_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      path_ = std::move(o.path_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  ~MappedFile() { unmap(); }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  const std::string& path() const noexcept { return path_; }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw std::system_error(errno, std::generic_category(), path_ + ": " + what);
  }

  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace ordo::io

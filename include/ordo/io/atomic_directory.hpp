// ordo/io/atomic_directory.hpp — writing a whole directory atomically: every file goes into a
// temporary directory beside the target, which then takes the target's place in one rename.
//
//   write_text(path, text)                                 one file, atomically
//   write_directory_atomically(dir, produce, replaceable)  a directory, atomically
#pragma once

#include <cerrno>        // errno
#include <cstdio>        // renameat2, std::rename
#include <cstdlib>       // mkdtemp, std::strtol
#include <filesystem>    // std::filesystem
#include <span>          // std::span
#include <stdexcept>     // std::invalid_argument
#include <string>        // std::string
#include <system_error>  // std::system_error

#include <fcntl.h>   // open, AT_FDCWD
#include <signal.h>  // kill (is a process alive)
#include <unistd.h>  // fsync, close, getpid

#include <ordo/io/atomic_write.hpp>  // write_file_atomically, AtomicSink

namespace ordo::io {

namespace fs = std::filesystem;

inline void write_text(const fs::path& path, const std::string& text) {
  write_file_atomically(path, [&](AtomicSink& sink) { sink.write(std::as_bytes(std::span(text))); });
}

inline void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// Removes the temporary directories a killed write of `target` left beside it: those named
/// `.<target name>.tmp.<pid>.*` whose process no longer runs (a write in progress, by this or
/// another process, is left alone). Returns how many it removed.
inline std::size_t remove_stale_temporaries(const fs::path& target) {
  const std::string prefix = "." + target.filename().string() + ".tmp.";
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(target.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !e.is_directory(ec)) continue;
    const std::string rest = name.substr(prefix.size());  // "<pid>.XXXXXX" (or ".old" after it)
    const auto dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || rest.find_first_not_of("0123456789") != dot) continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)
      continue;  // the process runs (EPERM: another user's), so the write may be in progress
    std::error_code rm;
    fs::remove_all(e.path(), rm);
    if (!rm) ++removed;
  }
  return removed;
}

/// Fills a fresh temporary directory beside `target` with `produce(tmp)`, then puts it in
/// place of `target`: into an empty or missing `target`
/// by one rename, over an existing one by renameat2(RENAME_EXCHANGE) (or, where the file system
/// lacks it, by moving the old one aside first). An existing `target` is replaced only when every
/// entry in it is a regular file for which `replaceable(name)` is true, so a wrong path cannot
/// wipe unrelated data. The temporary directory is `.<name>.tmp.<pid>.XXXXXX`; those of killed
/// writes of the same target are removed first (remove_stale_temporaries). Returns the
/// normalized target path.
template <class Produce, class Replaceable>
fs::path write_directory_atomically(const fs::path& target_in, Produce&& produce, Replaceable&& replaceable) {
  fs::path target = fs::absolute(target_in).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  const fs::path parent = target.parent_path();
  if (!fs::is_directory(parent))
    throw std::system_error(ENOENT, std::generic_category(), target.string() + ": the parent directory does not exist");
  if (fs::exists(target)) {
    if (!fs::is_directory(target))
      throw std::invalid_argument(target.string() + ": exists and is not a directory; not replacing it");
    for (const auto& e : fs::directory_iterator(target))
      if (!e.is_regular_file() || !replaceable(e.path().filename().string()))
        throw std::invalid_argument(target.string() + ": exists and holds '" + e.path().filename().string() +
                                    "', which this writer does not own; not replacing the directory");
  }
  remove_stale_temporaries(target);  // what a killed write of the same target left behind
  std::string tmpl =
      (parent / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()) + ".XXXXXX")).string();
  if (!::mkdtemp(tmpl.data()))
    throw std::system_error(errno, std::generic_category(),
                            target.string() + ": cannot create a temporary directory beside it");
  const fs::path tmp = tmpl;
  try {
    fs::permissions(tmp, fs::perms(0755));  // mkdtemp makes it 0700; a checkpoint is for sharing
    produce(tmp);
    fsync_dir(tmp);
    if (!fs::exists(target)) {
      if (std::rename(tmp.c_str(), target.c_str()) != 0)
        throw std::system_error(errno, std::generic_category(),
                                target.string() + ": cannot rename the new checkpoint into place");
    } else if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      fs::remove_all(tmp);  // now the old directory
    } else {                // file systems without RENAME_EXCHANGE: move the old one aside first
      const fs::path old = tmp.string() + ".old";
      fs::rename(target, old);
      fs::rename(tmp, target);
      fs::remove_all(old);
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  fsync_dir(parent);
  return target;
}

}  // namespace ordo::io

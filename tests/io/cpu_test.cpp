// The CPUs a tool may use, and the warning for OpenBLAS on kernels older than the CPU
// (ordo/io/cpu.hpp), and malloc keeping freed memory.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>  // mallinfo2
#endif

#include <ordo/io/cpu.hpp>

TEST_CASE("usable and idle CPUs: at least one, idle ones among the usable") {
  const int usable = ordo::io::usable_cpus();
  CHECK(usable >= 1);
  const int idle = ordo::io::idle_cpus(std::chrono::milliseconds(50));
  CHECK(idle >= 1);
  CHECK(idle <= usable);
}

TEST_CASE("OpenBLAS's generic kernels on an AVX2 or AVX-512 CPU are worth a warning, nothing else is") {
  using ordo::io::slow_blas_warning;
  const auto avx512 = slow_blas_warning("Prescott", true, true);
  REQUIRE(avx512);
  CHECK(avx512->find("OpenBLAS runs its generic Prescott kernels on this AVX-512 CPU") == 0);
  CHECK(avx512->find("OPENBLAS_CORETYPE=SkylakeX") != std::string::npos);
  const auto avx2 = slow_blas_warning("prescott", true, false);  // the name's case does not matter
  REQUIRE(avx2);
  CHECK(avx2->find("OPENBLAS_CORETYPE=Haswell") != std::string::npos);
  CHECK_FALSE(slow_blas_warning("Prescott", false, false));  // an old CPU: the kernels fit it
  CHECK_FALSE(slow_blas_warning("SkylakeX", true, true));
  CHECK_FALSE(slow_blas_warning("Haswell", true, false));
  CHECK_FALSE(slow_blas_warning("", true, true));  // no OpenBLAS in the process (MKL, or no LibTorch)
}

TEST_CASE("a process without OpenBLAS has no BLAS core name") {
  // This test links no BLAS; the lookup finds nothing and says so, it does not fail.
  CHECK(ordo::io::blas_core().empty());
  CHECK_FALSE(ordo::io::slow_blas_warning());
}

TEST_CASE("a malloc variable the user set wins over retain_freed_memory") {
  using ordo::io::user_malloc_setting;
  std::map<std::string, std::string> env;
  const auto lookup = [&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  CHECK_FALSE(user_malloc_setting(lookup));
  env["MALLOC_ARENA_MAX"] = "2";  // not about unmapping: ignored
  CHECK_FALSE(user_malloc_setting(lookup));
  env["MALLOC_MMAP_THRESHOLD_"] = "65536";
  CHECK(user_malloc_setting(lookup) == std::string("MALLOC_MMAP_THRESHOLD_"));
  env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_max=0";
  CHECK(user_malloc_setting(lookup) == std::string("GLIBC_TUNABLES"));
}

#if defined(__GLIBC__)
namespace {
// Number of blocks malloc serves from their own mmap while a 64 MiB block is held.
std::size_t mapped_blocks_holding_64_mib() {
  constexpr std::size_t size = std::size_t{64} << 20;
  char* volatile p = static_cast<char*>(std::malloc(size));
  REQUIRE(p != nullptr);
  std::memset(p, 1, 4096);
  const std::size_t blocks = mallinfo2().hblks;
  std::free(p);
  return blocks;
}
}  // namespace

TEST_CASE("retain_freed_memory: large blocks come from the heap, not from mmap") {
  if (ordo::io::user_malloc_setting([](const char* n) { return std::getenv(n); })) {
    CHECK_FALSE(ordo::io::retain_freed_memory());
    return;  // the user's malloc settings hold; nothing else to check
  }
  const std::size_t before = mapped_blocks_holding_64_mib();
  if (before == 0) {
    // Not glibc's own malloc behind malloc (a sanitizer's, or a preloaded allocator): mallopt does
    // not reach it, and retain_freed_memory must say so rather than claim an effect.
    CHECK_FALSE(ordo::io::retain_freed_memory());
    return;
  }
  REQUIRE(ordo::io::retain_freed_memory());
  CHECK(mapped_blocks_holding_64_mib() == before - 1);
}
#endif

// ---- a fatal signal reported before the process dies (ordo/io/crash_report.hpp) ----------------
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define ORDO_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define ORDO_TEST_SANITIZED 1
#endif
#endif
#if !defined(ORDO_TEST_SANITIZED) && defined(__linux__)
#include <sys/wait.h>
#include <unistd.h>

#include <ordo/io/crash_report.hpp>

namespace {
// The child's stderr and how it ended, after `crash` ran in it with the report installed.
struct crashed {
  std::string err;
  int status = 0;
};
template <class F>
crashed run_crashing(F crash) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::alarm(20);  // bounded, whatever happens
    ordo::io::install_crash_report("crash-test");
    crash();
    ::_exit(0);
  }
  ::close(fds[1]);
  crashed out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.err.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  ::waitpid(pid, &out.status, 0);
  return out;
}
using function = void (*)();
volatile function null_function = nullptr;
}  // namespace

TEST_CASE("a fatal signal is reported with its call site, then ends the process as it would have") {
  const auto null_call = run_crashing([] { null_function(); });  // a jump to address 0
  CHECK(WIFSIGNALED(null_call.status));
  CHECK(WTERMSIG(null_call.status) == SIGSEGV);
  CHECK(null_call.err.find("crash-test: fatal signal SIGSEGV at address 0x0") == 0);
#if defined(__x86_64__)
  CHECK(null_call.err.find(", instruction 0x0\n  called from:\n") != std::string::npos);
  CHECK(null_call.err.find("io.cpu") != std::string::npos);  // the call site is in this program
#endif
  CHECK(null_call.err.find("  stack:\n") != std::string::npos);

  const auto bad_read = run_crashing([] {
    volatile std::uintptr_t where = 16;
    (void)*reinterpret_cast<volatile int*>(where);
  });
  CHECK(WIFSIGNALED(bad_read.status));
  CHECK(WTERMSIG(bad_read.status) == SIGSEGV);
  CHECK(bad_read.err.find("crash-test: fatal signal SIGSEGV at address 0x10, instruction 0x") == 0);
  CHECK(bad_read.err.find("called from") == std::string::npos);  // a read, not a call through 0

  const auto fine = run_crashing([] {});
  CHECK(WIFEXITED(fine.status));
  CHECK(WEXITSTATUS(fine.status) == 0);
  CHECK(fine.err.empty());
}
#endif

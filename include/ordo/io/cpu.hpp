// ordo/io/cpu.hpp — how many CPUs a process may use, and how many of them other processes leave
// idle (Linux: sched_getaffinity and /proc/stat). Torch-free. ordo's tools take their default
// thread count from idle_cpus(): an OpenMP thread on a CPU another process keeps busy waits for
// its time slice at every parallel region, which on a 2-CPU machine made generation 10-20 times
// slower than one thread (docs/errors.md, "Threads"). Also which kernels the process's OpenBLAS
// chose (blas_core()), and a warning when it fell back to generic ones (slow_blas_warning()).
// And retain_freed_memory(): glibc's malloc keeps freed blocks for reuse instead of unmapping them.
#pragma once

#include <dlfcn.h>  // dlsym, RTLD_DEFAULT
#include <malloc.h>  // mallopt, M_MMAP_MAX, M_TRIM_THRESHOLD (glibc)
#include <sched.h>  // sched_getaffinity, CPU_COUNT
#include <strings.h>  // strcasecmp

#include <chrono>   // std::chrono::milliseconds
#include <climits>  // INT_MAX
#include <cstdint>  // std::uint64_t
#include <cstdlib>  // std::atoi, std::getenv
#include <fstream>  // std::ifstream
#include <map>      // std::map
#include <optional> // std::optional
#include <sstream>  // std::istringstream
#include <string>   // std::string
#include <thread>   // std::this_thread::sleep_for

namespace ordo::io {

/// The CPUs this process may run on (its affinity mask), at least 1.
inline int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

namespace detail {

struct cpu_times {
  std::uint64_t busy = 0, total = 0;
};

// Per CPU ("cpu0", "cpu1", ...): jiffies spent busy and in total since boot.
inline std::map<std::string, cpu_times> read_proc_stat() {
  std::map<std::string, cpu_times> out;
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0 || line.size() < 4 || line[3] == ' ') continue;  // "cpu " is the sum
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    std::uint64_t v[8] = {};  // user nice system idle iowait irq softirq steal
    for (auto& x : v) fields >> x;
    cpu_times t;
    t.total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    t.busy = t.total - v[3] - v[4];
    out[name] = t;
  }
  return out;
}

}  // namespace detail

/// How many CPUs of this process's affinity mask were mostly idle (busy less than half the time)
/// over `sample`, at least 1. Without /proc/stat or the mask: usable_cpus().
inline int idle_cpus(std::chrono::milliseconds sample = std::chrono::milliseconds(200)) {
  const int usable = usable_cpus();
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return usable;
  const auto before = detail::read_proc_stat();
  if (before.empty()) return usable;
  std::this_thread::sleep_for(sample);
  const auto after = detail::read_proc_stat();
  int idle = 0;
  for (const auto& [name, a] : after) {
    const int cpu = std::atoi(name.c_str() + 3);  // "cpu12" -> 12
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask)) continue;
    const auto b = before.find(name);
    if (b == before.end() || a.total <= b->second.total) continue;
    const double busy = static_cast<double>(a.busy - b->second.busy) / static_cast<double>(a.total - b->second.total);
    if (busy < 0.5) ++idle;
  }
  if (idle < 1) idle = 1;
  return idle < usable ? idle : usable;
}

/// The kernel family of the OpenBLAS this process runs on ("Haswell", "SkylakeX", "Prescott",
/// ...; OPENBLAS_CORETYPE chooses it), or "" when the process has no OpenBLAS (LibTorch with MKL,
/// or no LibTorch). Looked up at run time: nothing links against OpenBLAS for it.
inline std::string blas_core() {
  using corename_fn = char* (*)();
  const auto f = reinterpret_cast<corename_fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* name = f ? f() : nullptr;
  return name ? std::string(name) : std::string();
}

/// The warning for OpenBLAS on its generic "Prescott" kernels on a CPU with AVX2 or AVX-512
/// (an OpenBLAS older than the CPU, e.g. Debian 12's 0.3.21 on Sapphire or Emerald Rapids):
/// matrix products then run ~4x slower and their sums depend on the thread count. nullopt when
/// the kernels fit the CPU.
inline std::optional<std::string> slow_blas_warning(const std::string& core, bool avx2, bool avx512) {
  if (strcasecmp(core.c_str(), "prescott") != 0 || !(avx2 || avx512)) return std::nullopt;
  return std::string("OpenBLAS runs its generic Prescott kernels on this ") + (avx512 ? "AVX-512" : "AVX2") +
         " CPU (it does not know the model): matrix products are ~4x slower and their sums depend on the thread "
         "count; set OPENBLAS_CORETYPE=" + (avx512 ? "SkylakeX" : "Haswell") + " (./ordo does)";
}

/// slow_blas_warning() for this process and CPU.
inline std::optional<std::string> slow_blas_warning() {
#if defined(__x86_64__) || defined(__i386__)
  return slow_blas_warning(blas_core(), __builtin_cpu_supports("avx2"), __builtin_cpu_supports("avx512f"));
#else
  return std::nullopt;
#endif
}

/// The first of glibc's malloc variables that is set in the environment (`getenv`: std::getenv,
/// or a stand-in for tests): a user who tuned malloc keeps their setting.
template <class Getenv>
std::optional<std::string> user_malloc_setting(Getenv getenv) {
  for (const char* name : {"GLIBC_TUNABLES", "MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                           "MALLOC_TOP_PAD_"})
    if (getenv(name) != nullptr) return std::string(name);
  return std::nullopt;
}

/// Makes glibc's malloc keep freed memory for the next allocation instead of unmapping it. By
/// default glibc serves every block above 32 MiB from its own mmap and unmaps it when freed, so
/// each training step's large tensors (a chunk of logits, the optimizer's temporaries, the
/// embedding's gradient) arrive as fresh pages that the kernel zeroes and faults in one by one: a
/// third of a KD step's CPU time here was spent in the kernel (docs/training.md). With mmap off
/// and the heap trimmed only above 2 GiB of free space at its top, steps reuse the same pages.
/// Numerics are untouched. Does nothing (returns false) when the user set a malloc variable
/// (user_malloc_setting), the C library is not glibc, or malloc is not glibc's own (a sanitizer's
/// or a preloaded allocator, which refuses mallopt); true when the settings took effect.
inline bool retain_freed_memory() {
#if defined(__GLIBC__)
  if (user_malloc_setting([](const char* n) { return std::getenv(n); })) return false;
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
#else
  return false;
#endif
}

}  // namespace ordo::io

// ordo/io/cpu.hpp — how many CPUs a process may use, and how many of them other processes leave
// idle (Linux: sched_getaffinity and /proc/stat). Torch-free. ordo's tools take their default
// thread count from idle_cpus(): an OpenMP thread on a CPU another process keeps busy waits for
// its time slice at every parallel region, which on a 2-CPU machine made generation 10-20 times
// slower than one thread (docs/errors.md, "Threads").
#pragma once

#include <sched.h>  // sched_getaffinity, CPU_COUNT

#include <chrono>   // std::chrono::milliseconds
#include <cstdint>  // std::uint64_t
#include <cstdlib>  // std::atoi
#include <fstream>  // std::ifstream
#include <map>      // std::map
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

}  // namespace ordo::io

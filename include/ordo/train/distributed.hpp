// ordo/train/distributed.hpp — data parallelism across processes over LibTorch's own engine
// (c10d): a process group joined from torchrun's environment, and the collectives the trainer
// needs.
//
//   auto group = ordo::dist::group::from_environment();  // nullptr: one process (no WORLD_SIZE)
//   options.group = group;                                // TrainOptions: each rank its share
//
// Rendezvous: RANK, WORLD_SIZE, MASTER_ADDR (default 127.0.0.1), MASTER_PORT (default 29500), as
// torchrun sets them (also LOCAL_RANK, unused on CPUs, and LOCAL_WORLD_SIZE, the ranks on this machine,
// default WORLD_SIZE); rank 0 hosts the TCPStore. Tensors on the
// CPU travel by Gloo (compiled into Debian's LibTorch; its headers come with libgloo-dev). Every
// collective is bounded by the group's timeout (ORDO_DIST_TIMEOUT seconds, default 120): a rank
// that died or stopped answering makes the others fail with an error, never wait forever.
#pragma once

#include <algorithm>  // std::max, std::copy
#include <chrono>     // std::chrono
#include <cstdint>    // std::uint64_t
#include <cstdlib>    // std::getenv
#include <functional> // std::function
#include <memory>     // std::shared_ptr
#include <optional>   // std::optional
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string
#include <thread>     // std::thread::hardware_concurrency
#include <utility>    // std::forward, std::move
#include <vector>     // std::vector

#include <torch/torch.h>

#include <ordo/eval/shard.hpp>  // eval::shard

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(ORDO_WITH_GLOO)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // ProcessGroupGloo.hpp declares its class only under this macro
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

namespace ordo::dist {

/// A process failed to join, or a collective failed or timed out.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Whether this build can run process groups (c10d's Gloo backend for CPU tensors).
constexpr bool available() {
#if defined(ORDO_WITH_GLOO)
  return true;
#else
  return false;
#endif
}

/// Where to meet and how long to wait: from torchrun's variables (environment()).
struct rendezvous {
  int rank = 0;
  int world_size = 1;
  int local_world_size = 1;  // ranks on this machine: LOCAL_WORLD_SIZE, else world_size
  std::string address = "127.0.0.1";
  std::uint16_t port = 29500;
  std::chrono::milliseconds timeout{120000};

  /// The variables as torchrun sets them; world_size 1 when WORLD_SIZE is unset. Malformed or
  /// inconsistent values are an error naming the variable.
  static rendezvous environment() {
    rendezvous r;
    auto number = [](const char* name, long long lo, long long hi, long long fallback) {
      const char* v = std::getenv(name);
      if (!v || !*v) return fallback;
      char* end = nullptr;
      const long long x = std::strtoll(v, &end, 10);
      if (*end != '\0' || x < lo || x > hi)
        throw error(std::string(name) + "=" + v + ": must be an integer within [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
      return x;
    };
    r.world_size = static_cast<int>(number("WORLD_SIZE", 1, 65536, 1));
    r.rank = static_cast<int>(number("RANK", 0, r.world_size - 1, 0));
    if (r.world_size > 1 && !std::getenv("RANK")) throw error("WORLD_SIZE is " + std::to_string(r.world_size) + " but RANK is not set");
    r.local_world_size = static_cast<int>(number("LOCAL_WORLD_SIZE", 1, r.world_size, r.world_size));
    if (const char* a = std::getenv("MASTER_ADDR"); a && *a) r.address = a;
    r.port = static_cast<std::uint16_t>(number("MASTER_PORT", 1, 65535, 29500));
    r.timeout = std::chrono::milliseconds(number("ORDO_DIST_TIMEOUT", 1, 86400, 120) * 1000);
    return r;
  }
};

/// A c10d process group of `size()` ranks, this process being `rank()`.
class group {
  // What a collective returns: c10d's Work handle (its type's name differs between LibTorch 1.x
  // and 2.x).
  using work_ptr = decltype(std::declval<c10d::ProcessGroup&>().barrier(std::declval<const c10d::BarrierOptions&>()));

 public:
  /// Joins the group the environment describes; nullptr when WORLD_SIZE is unset or 1.
  /// `timeout` (e.g. a tool's --dist-timeout) replaces ORDO_DIST_TIMEOUT when given.
  static std::shared_ptr<group> from_environment(std::optional<std::chrono::seconds> timeout = std::nullopt) {
    auto r = rendezvous::environment();
    if (timeout) r.timeout = *timeout;
    if (r.world_size <= 1) return nullptr;
    return std::make_shared<group>(r);
  }

  explicit group(const rendezvous& r)
      : rank_(r.rank), size_(r.world_size), local_size_(std::max(1, r.local_world_size)), timeout_(r.timeout) {
#if defined(ORDO_WITH_GLOO)
    const std::string where = r.address + ":" + std::to_string(r.port);
    try {
      c10d::TCPStoreOptions so;
      so.port = r.port;
      so.isServer = r.rank == 0;
      so.numWorkers = static_cast<std::size_t>(r.world_size);
      so.waitWorkers = true;
      so.timeout = r.timeout;
      store_ = c10::make_intrusive<c10d::TCPStore>(r.address, so);
      auto o = c10d::ProcessGroupGloo::Options::create();
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(r.address));
      o->timeout = r.timeout;
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, r.rank, r.world_size, o);
    } catch (const std::exception& e) {
      throw error("rank " + std::to_string(r.rank) + " of " + std::to_string(r.world_size) +
                  ": cannot join the process group at " + where + " within " +
                  std::to_string(r.timeout.count() / 1000) + " s (" + first_line(e.what()) + ")");
    }
#else
    throw error("WORLD_SIZE is " + std::to_string(r.world_size) +
                ", but this build of ordo has no process groups: its LibTorch comes without c10d's Gloo headers "
                "(Debian's LibTorch with libgloo-dev has them)");
#endif
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  /// When the trainer all-reduces the gradients of a step's last backward pass: `on` while that
  /// pass still runs, in buckets of about `bucket_bytes` that Gloo reduces in its own threads;
  /// `off` after it; `automatic` (default) on only when this machine has a core to spare for
  /// Gloo's threads: hardware threads >= local ranks x (LibTorch threads + 1), the local ranks
  /// being LOCAL_WORLD_SIZE (torchrun sets it) or else the group's size. Where the compute
  /// threads fill every core, the reduction only competes with them (on the 2-core machine:
  /// 0.74-0.98x the tokens/s of reducing after the pass). The sums are the same either way.
  enum class overlap_mode { automatic, on, off };
  void set_overlap(overlap_mode mode, std::size_t bucket_bytes = std::size_t{16} << 20) {
    overlap_mode_ = mode;
    overlap_bucket_bytes_ = std::max<std::size_t>(bucket_bytes, 1);
  }
  void set_overlap(bool on, std::size_t bucket_bytes = std::size_t{16} << 20) {
    set_overlap(on ? overlap_mode::on : overlap_mode::off, bucket_bytes);
  }
  /// The setting resolved for this process now (`automatic` reads the thread count).
  bool overlap() const {
    if (overlap_mode_ != overlap_mode::automatic) return overlap_mode_ == overlap_mode::on;
    return core_to_spare(std::thread::hardware_concurrency(), local_size_, at::get_num_threads());
  }
  /// `automatic`'s rule: `cores` hardware threads hold `local_ranks` ranks of `threads` compute
  /// threads each plus one more each for the reduction.
  static constexpr bool core_to_spare(long long cores, long long local_ranks, long long threads) {
    return cores >= local_ranks * (threads + 1);
  }
  std::size_t overlap_bucket_bytes() const { return overlap_bucket_bytes_; }

  /// Starts summing `flat` (one CPU fp32 tensor) over the ranks and returns at once; Gloo works
  /// on it in its own threads. Call the returned function to wait for the sum (in place); leave
  /// `flat` alone until then.
  std::function<void()> all_reduce_sum_async(torch::Tensor flat) {
    auto tensors = std::make_shared<std::vector<torch::Tensor>>(std::vector<torch::Tensor>{std::move(flat)});
    auto work = start("all-reduce", [&] { return pg_->allreduce(*tensors); });
    return [this, work, tensors]() mutable { finish("all-reduce", work, timeout_); };
  }

  /// Sums `tensors` (CPU, fp32) over the ranks, in place, in buckets of about `bucket_bytes`.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors, std::size_t bucket_bytes = std::size_t{32} << 20) {
    std::size_t begin = 0;
    while (begin < tensors.size()) {
      std::size_t end = begin, bytes = 0;
      while (end < tensors.size() && (end == begin || bytes + tensor_bytes(tensors[end]) <= bucket_bytes))
        bytes += tensor_bytes(tensors[end++]);
      std::vector<torch::Tensor> flat_parts;
      for (std::size_t i = begin; i < end; ++i) flat_parts.push_back(tensors[i].reshape({-1}));
      std::vector<torch::Tensor> bucket{torch::cat(flat_parts)};
      run("all-reduce", [&] { return pg_->allreduce(bucket); });
      std::int64_t at = 0;
      for (std::size_t i = begin; i < end; ++i) {
        const auto n = tensors[i].numel();
        tensors[i].copy_(bucket[0].slice(0, at, at + n).view_as(tensors[i]));
        at += n;
      }
      begin = end;
    }
  }

  /// The sum of `values` over the ranks (fp64).
  std::vector<double> all_reduce_sum(const std::vector<double>& values) {
    std::vector<torch::Tensor> t{torch::tensor(values, torch::kFloat64)};
    run("all-reduce", [&] { return pg_->allreduce(t); });
    return {t[0].data_ptr<double>(), t[0].data_ptr<double>() + t[0].numel()};
  }

  /// Every rank's `value`, by rank, on every rank.
  std::vector<std::string> all_gather(const std::string& value) {
    std::vector<torch::Tensor> length{torch::tensor({static_cast<std::int64_t>(value.size())}, torch::kLong)};
    std::vector<std::vector<torch::Tensor>> lengths(1);
    for (int i = 0; i < size_; ++i) lengths[0].push_back(torch::empty({1}, torch::kLong));
    run("all-gather", [&] { return pg_->allgather(lengths, length); });
    std::int64_t longest = 1;
    for (const auto& l : lengths[0]) longest = std::max(longest, l.item<std::int64_t>());
    std::vector<torch::Tensor> mine{torch::zeros({longest}, torch::kUInt8)};
    std::copy(value.begin(), value.end(), reinterpret_cast<char*>(mine[0].data_ptr<std::uint8_t>()));
    std::vector<std::vector<torch::Tensor>> all(1);
    for (int i = 0; i < size_; ++i) all[0].push_back(torch::empty({longest}, torch::kUInt8));
    run("all-gather", [&] { return pg_->allgather(all, mine); });
    std::vector<std::string> out;
    for (int i = 0; i < size_; ++i) {
      const auto* bytes = reinterpret_cast<const char*>(all[0][static_cast<std::size_t>(i)].data_ptr<std::uint8_t>());
      out.emplace_back(bytes, static_cast<std::size_t>(lengths[0][static_cast<std::size_t>(i)].item<std::int64_t>()));
    }
    return out;
  }

  /// This rank's share of an evaluation (eval/shard.hpp); the group must outlive it.
  eval::shard shard() {
    eval::shard s;
    s.rank = rank_;
    s.size = size_;
    s.sum = [this](std::vector<double>& v) { v = all_reduce_sum(v); };
    s.gather = [this](const std::string& v) { return all_gather(v); };
    return s;
  }

  /// Every rank must give the same `value` (e.g. a fingerprint of its data and options): a
  /// mismatch is an error on every rank, naming the first rank that differs from rank 0.
  void require_same(const std::string& what, const std::string& value,
                    const std::string& meaning = "the ranks were started with different arguments, models or data") {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : value) h = (h ^ c) * 1099511628211ull;
    std::vector<torch::Tensor> mine{torch::tensor({static_cast<std::int64_t>(h)}, torch::kLong)};
    std::vector<std::vector<torch::Tensor>> all(1);
    for (int i = 0; i < size_; ++i) all[0].push_back(torch::empty({1}, torch::kLong));
    run("all-gather", [&] { return pg_->allgather(all, mine); });
    for (int i = 1; i < size_; ++i)
      if (all[0][static_cast<std::size_t>(i)].item<std::int64_t>() != all[0][0].item<std::int64_t>())
        throw error("rank " + std::to_string(i) + "'s " + what + " differs from rank 0's: " + meaning);
  }

  /// Waits for every rank, at most `timeout` (default: the group's).
  void barrier(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    const auto limit = timeout.count() > 0 ? timeout : timeout_;
    c10d::BarrierOptions o;
    o.timeout = limit;
    run("barrier", [&] { return pg_->barrier(o); }, limit);
  }

 private:
  static std::size_t tensor_bytes(const torch::Tensor& t) { return static_cast<std::size_t>(t.numel()) * t.element_size(); }
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  error failure(const char* what, std::chrono::milliseconds limit, const std::exception& e) const {
    return error("rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": the " + what +
                 " failed or timed out after " + std::to_string(limit.count() / 1000) +
                 " s (another rank died or stopped answering?): " + first_line(e.what()));
  }

  template <class Op>
  work_ptr start(const char* what, Op&& op) {
    try {
      return op();
    } catch (const std::exception& e) {
      throw failure(what, timeout_, e);
    }
  }

  void finish(const char* what, work_ptr& work, std::chrono::milliseconds limit) {
    try {
      work->wait(limit);
    } catch (const std::exception& e) {
      throw failure(what, limit, e);
    }
  }

  template <class Op>
  void run(const char* what, Op&& op, std::chrono::milliseconds limit = std::chrono::milliseconds(0)) {
    if (limit.count() == 0) limit = timeout_;
    auto work = start(what, std::forward<Op>(op));
    finish(what, work, limit);
  }

  int rank_ = 0, size_ = 1, local_size_ = 1;
  overlap_mode overlap_mode_ = overlap_mode::automatic;
  std::size_t overlap_bucket_bytes_ = std::size_t{16} << 20;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> pg_;
};

}  // namespace ordo::dist

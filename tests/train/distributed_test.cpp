// Data parallelism across processes (ordo/train/distributed.hpp): two ranks on loopback, each
// a distributed_worker process, take the steps one process takes on the whole batch (the
// gradients reduced during or after the backward pass alike, bit for bit) and share
// an evaluation that equals one process's to the last bit; ranks with
// other data stop at once; a rank alone, waiting for one that never comes, gives up within its
// timeout. Every process is bounded in time: a hang fails the test, it never stalls CI.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include <ordo/train/distributed.hpp>
#include <ordo/train/trainer.hpp>

#include "../test_support.hpp"
#include "distributed_support.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace {

// A TCP port nothing listens on now (bound to 127.0.0.1 by the kernel's choice, then released).
std::uint16_t free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(s);
  return ntohs(a.sin_port);
}

struct worker {
  pid_t pid = -1;
  fs::path log;
};

// Starts distributed_worker as `rank` of `world` with its output in `log`.
worker start(int rank, int world, std::uint16_t port, const fs::path& out, const fs::path& log, int shift = 0,
             int timeout_s = 30, bool overlap = true) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string v = *e;
    for (const char* k : {"RANK=", "WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=", "ORDO_DIST_TIMEOUT="})
      if (v.rfind(k, 0) == 0) goto skip;
    env.push_back(v);
  skip:;
  }
  env.push_back("RANK=" + std::to_string(rank));
  env.push_back("WORLD_SIZE=" + std::to_string(world));
  env.push_back("MASTER_ADDR=127.0.0.1");
  env.push_back("MASTER_PORT=" + std::to_string(port));
  env.push_back("ORDO_DIST_TIMEOUT=" + std::to_string(timeout_s));
  std::vector<char*> envp;
  for (auto& v : env) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::string program = ORDO_DIST_WORKER, out_arg = out.string(), shift_arg = std::to_string(shift);
  std::string when = overlap ? "during" : "after";
  std::vector<char*> argv{program.data(), out_arg.data(), shift_arg.data(), when.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  worker w;
  w.log = log;
  REQUIRE(posix_spawn(&w.pid, program.c_str(), &actions, nullptr, argv.data(), envp.data()) == 0);
  posix_spawn_file_actions_destroy(&actions);
  return w;
}

// The exit status of `w` (-1: still running at the deadline, then killed).
int finish(const worker& w, std::chrono::steady_clock::time_point deadline) {
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(w.pid, &status, WNOHANG) == w.pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(w.pid, SIGKILL);
  ::waitpid(w.pid, &status, 0);
  return -1;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct scratch {
  fs::path dir = fs::temp_directory_path() / ("ordo-dist-test-" + std::to_string(::getpid()));
  scratch() { fs::create_directories(dir); }
  ~scratch() { fs::remove_all(dir); }
};

}  // namespace

TEST_CASE("two ranks on loopback take the steps one process takes on the whole batch") {
  if (!ordo::dist::available()) skip_test("this LibTorch has no c10d Gloo headers (Debian's LibTorch + libgloo-dev)");
  scratch s;
  const auto port = free_port();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  auto r0 = start(0, 2, port, s.dir / "params.pt", s.dir / "rank0.log");
  auto r1 = start(1, 2, port, s.dir / "unused.pt", s.dir / "rank1.log");
  const int e0 = finish(r0, deadline), e1 = finish(r1, deadline);
  INFO("rank 0: " << slurp(r0.log));
  INFO("rank 1: " << slurp(r1.log));
  REQUIRE(e0 == 0);
  REQUIRE(e1 == 0);
  CHECK(!fs::exists(s.dir / "unused.pt"));  // one writer

  at::set_num_threads(1);
  auto lm = dist_test::model();
  ordo::train::fine_tune(lm, dist_test::data(), dist_test::options(), {});
  std::vector<torch::Tensor> two_ranks;
  torch::load(two_ranks, (s.dir / "params.pt").string());
  const auto one = lm->parameters();
  REQUIRE(two_ranks.size() == one.size());
  double worst = 0, moved = 0;
  auto start_model = dist_test::model();
  const auto initial = start_model->parameters();
  for (std::size_t i = 0; i < one.size(); ++i) {
    worst = std::max(worst, (two_ranks[i] - one[i]).abs().max().item<double>());
    moved = std::max(moved, (one[i] - initial[i]).abs().max().item<double>());
  }
  MESSAGE("max |2 ranks - 1 process| over every weight: " << worst << " (training moved weights by up to " << moved
                                                          << ")");
  CHECK(moved > 1e-3);    // the run trained
  CHECK(worst < 1e-5);    // fp32 sums in another order (padding, reduction), nothing more

  // Evaluation sharded over the two ranks gives one process's figures to the last bit.
  const auto sharded = slurp(s.dir / "params.pt.eval");
  const auto alone = dist_test::sharded_figures({});
  MESSAGE("perplexity figures (nll, tokens; text then examples): 2 ranks " << sharded << ", 1 process " << alone);
  CHECK(sharded == alone);
  CHECK(slurp(s.dir / "params.pt.gather") == "a\nbbbb\n");  // every rank's string, by rank

  // The gradients reduced during the last backward pass of each step (the default, above) or
  // after the backward passes: the same sums, so the same weights bit for bit.
  const auto port2 = free_port();
  auto a0 = start(0, 2, port2, s.dir / "after.pt", s.dir / "after0.log", 0, 30, /*overlap=*/false);
  auto a1 = start(1, 2, port2, s.dir / "unused-after.pt", s.dir / "after1.log", 0, 30, /*overlap=*/false);
  const int f0 = finish(a0, deadline), f1 = finish(a1, deadline);
  INFO("after, rank 0: " << slurp(a0.log));
  REQUIRE(f0 == 0);
  REQUIRE(f1 == 0);
  std::vector<torch::Tensor> after;
  torch::load(after, (s.dir / "after.pt").string());
  REQUIRE(after.size() == two_ranks.size());
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(torch::equal(after[i], two_ranks[i]));
}

TEST_CASE("ranks started with other data stop at once, naming the rank") {
  if (!ordo::dist::available()) skip_test("this LibTorch has no c10d Gloo headers (Debian's LibTorch + libgloo-dev)");
  scratch s;
  const auto port = free_port();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto r0 = start(0, 2, port, s.dir / "params.pt", s.dir / "rank0.log");
  auto r1 = start(1, 2, port, s.dir / "other.pt", s.dir / "rank1.log", /*shift=*/1);
  const int e0 = finish(r0, deadline), e1 = finish(r1, deadline);
  const auto log0 = slurp(r0.log), log1 = slurp(r1.log);
  INFO("rank 0: " << log0);
  INFO("rank 1: " << log1);
  CHECK(e0 == 1);
  CHECK(e1 == 1);
  CHECK(log0.find("rank 1's training run (data, options, starting weights) differs from rank 0's") != std::string::npos);
  CHECK(!fs::exists(s.dir / "params.pt"));
}

TEST_CASE("a rank whose peer never comes gives up within its timeout") {
  if (!ordo::dist::available()) skip_test("this LibTorch has no c10d Gloo headers (Debian's LibTorch + libgloo-dev)");
  scratch s;
  const auto started = std::chrono::steady_clock::now();
  auto r0 = start(0, 2, free_port(), s.dir / "params.pt", s.dir / "rank0.log", 0, /*timeout_s=*/3);
  const int e0 = finish(r0, started + std::chrono::seconds(60));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto log0 = slurp(r0.log);
  INFO("rank 0: " << log0);
  CHECK(e0 == 1);
  CHECK(seconds < 30);
  CHECK(log0.find("rank 0 of 2: cannot join the process group at 127.0.0.1:") != std::string::npos);
  CHECK(!fs::exists(s.dir / "params.pt"));
}

TEST_CASE("the environment: torchrun's variables, checked") {
  ::setenv("WORLD_SIZE", "2", 1);
  ::unsetenv("RANK");
  CHECK_THROWS_WITH_AS(ordo::dist::rendezvous::environment(), "WORLD_SIZE is 2 but RANK is not set", ordo::dist::error);
  ::setenv("RANK", "2", 1);
  CHECK_THROWS_WITH_AS(ordo::dist::rendezvous::environment(), "RANK=2: must be an integer within [0, 1]",
                       ordo::dist::error);
  ::setenv("RANK", "1", 1);
  ::setenv("MASTER_PORT", "70000", 1);
  CHECK_THROWS_WITH_AS(ordo::dist::rendezvous::environment(), "MASTER_PORT=70000: must be an integer within [1, 65535]",
                       ordo::dist::error);
  ::setenv("MASTER_PORT", "29501", 1);
  const auto r = ordo::dist::rendezvous::environment();
  CHECK(r.rank == 1);
  CHECK(r.world_size == 2);
  CHECK(r.port == 29501);
  CHECK(r.address == "127.0.0.1");
  CHECK(r.local_world_size == 2);  // LOCAL_WORLD_SIZE unset: every rank on this machine
  ::setenv("LOCAL_WORLD_SIZE", "3", 1);
  CHECK_THROWS_WITH_AS(ordo::dist::rendezvous::environment(), "LOCAL_WORLD_SIZE=3: must be an integer within [1, 2]",
                       ordo::dist::error);
  ::setenv("LOCAL_WORLD_SIZE", "1", 1);
  CHECK(ordo::dist::rendezvous::environment().local_world_size == 1);
  for (const char* k : {"WORLD_SIZE", "RANK", "MASTER_PORT", "LOCAL_WORLD_SIZE"}) ::unsetenv(k);
  CHECK(ordo::dist::group::from_environment() == nullptr);  // one process: nothing changes
}

TEST_CASE("gradients reduced during the backward pass only where a core is free for it") {
  using g = ordo::dist::group;
  CHECK_FALSE(g::core_to_spare(2, 2, 1));  // 2 cores, 2 ranks x 1 thread: reducing competes
  CHECK_FALSE(g::core_to_spare(2, 1, 2));
  CHECK(g::core_to_spare(4, 2, 1));
  CHECK(g::core_to_spare(16, 2, 7));
  CHECK_FALSE(g::core_to_spare(16, 2, 8));
}

// KD steps on the default model in one process with T threads against N processes of T / N
// threads each (ordo's data parallelism over c10d/Gloo on loopback), measured in the same run:
// tokens/s of the global batch, the scaling efficiency, and the time of the all-reduce one step
// makes (the parameters' gradients, in the trainer's buckets); and the N ranks again with the
// gradients reduced after the backward passes instead of during the last one (`overlap_gain`).
// Prints one JSON line.
//
//   ordo-bench-data-parallel [--model FILE.gguf] [--batch 4] [--seq 128] [--steps 3] [--threads 2]
//                            [--ranks 2]
//
// The same KD stage (apply(Distill<T4, A03>)) on the same global batches in both runs: one
// process takes every example of a batch; each of the N ranks takes its share and the gradients
// are summed (docs/distributed.md). The first step warms up and is not timed.
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/model/language_model.hpp>  // default_model_path
#include <ordo/pipeline.hpp>
#include <ordo/stages/distill.hpp>
#include <ordo/train/distributed.hpp>

extern char** environ;

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

struct measured {
  double tokens_per_s = 0;
  std::vector<double> step_seconds;
  double allreduce_seconds = 0;  // per step, with a group
};

// The KD stage on `steps` + 1 global batches of random tokens; with a group, this rank's share.
measured kd_steps(const std::string& model_path, std::int64_t batch, std::int64_t seq, std::int64_t steps,
                  std::shared_ptr<ordo::dist::group> group) {
  auto base = ordo::DenseModel::load(model_path);
  ordo::Context ctx;
  ctx.teacher = std::make_shared<ordo::DenseModel>(base);
  ctx.group = group;
  std::mt19937_64 rng(0);
  const auto vocab = base.config().vocab_size;
  for (std::int64_t i = 0; i < batch * (steps + 1); ++i) {
    ordo::Example e;
    for (std::int64_t t = 0; t < seq; ++t) e.ids.push_back(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(vocab)));
    e.labels = e.ids;
    e.labels[0] = -100;
    ctx.train.push_back(std::move(e));
  }
  ctx.budget.train_samples = batch * (steps + 1);
  ctx.budget.sequence_length = seq;
  ctx.budget.epochs = 1;
  ctx.budget.batch_size = batch;
  ctx.budget.grad_accumulation = 1;
  ctx.budget.warmup_fraction = 0.0;
  std::vector<double> stamps;
  ctx.progress = [&](const std::string& what, double, const std::string&) {
    if (what == "distill")
      stamps.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
  };
  ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  measured m;
  double timed = 0;
  for (std::size_t i = 1; i < stamps.size(); ++i) {
    timed += stamps[i] - stamps[i - 1];
    m.step_seconds.push_back(stamps[i] - stamps[i - 1]);
  }
  m.tokens_per_s = static_cast<double>(batch * seq * steps) / timed;
  if (group) {  // the step's all-reduce alone: every parameter's gradient, as the trainer sends it
    std::vector<torch::Tensor> grads;
    for (const auto& p : const_cast<ordo::model::CausalLM&>(base.lm())->parameters()) grads.push_back(torch::ones_like(p));
    group->all_reduce_sum(grads);  // warm-up
    const int repeats = 3;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) group->all_reduce_sum(grads);
    m.allreduce_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / repeats;
  }
  return m;
}

std::uint16_t free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::cout << "ordo-bench-data-parallel [--model FILE.gguf] [--batch 4] [--seq 128] [--steps 3] [--threads 2] "
                   "[--ranks 2]\n";
      return 0;
    }
  const std::string model_path = arg(argc, argv, "model", ordo::model::default_model_path().string());
  const auto batch = std::stoll(arg(argc, argv, "batch", "4"));
  const auto seq = std::stoll(arg(argc, argv, "seq", "128"));
  const auto steps = std::stoll(arg(argc, argv, "steps", "3"));
  const int threads = std::stoi(arg(argc, argv, "threads", "2"));
  const int ranks = std::stoi(arg(argc, argv, "ranks", "2"));
  try {
    if (const char* report = std::getenv("ORDO_BENCH_REPORT")) {  // a rank
      auto group = ordo::dist::group::from_environment();
      const char* when = std::getenv("ORDO_BENCH_REDUCE");
      group->set_overlap(!(when && std::string(when) == "after"));  // measured both ways, not by the auto rule
      torch::set_num_threads(std::max(1, threads / group->size()));
      const auto m = kd_steps(model_path, batch, seq, steps, group);
      if (group->rank() == 0)
        std::ofstream(report) << nlohmann::json{{"tokens_per_s", m.tokens_per_s},
                                                {"step_seconds", m.step_seconds},
                                                {"allreduce_seconds_per_step", m.allreduce_seconds}}
                                     .dump();
      return 0;
    }
    if (!ordo::dist::available()) {
      std::cerr << "ordo-bench-data-parallel: this build has no process groups (no c10d Gloo headers)\n";
      return 1;
    }
    torch::set_num_threads(threads);
    const auto one = kd_steps(model_path, batch, seq, steps, nullptr);

    // N ranks of this program (ORDO_BENCH_REPORT makes a process a rank), the gradients
    // reduced during the last backward pass of each step (`during`) or after it; rank 0's figures.
    auto with_ranks = [&](const char* when) {
      const auto report =
          std::filesystem::temp_directory_path() / ("ordo-bench-dp-" + std::to_string(::getpid()) + ".json");
      const auto port = free_port();
      std::vector<pid_t> pids;
      for (int r = 0; r < ranks; ++r) {
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e) env.emplace_back(*e);
        env.push_back("RANK=" + std::to_string(r));
        env.push_back("WORLD_SIZE=" + std::to_string(ranks));
        env.push_back("MASTER_ADDR=127.0.0.1");
        env.push_back("MASTER_PORT=" + std::to_string(port));
        env.push_back("ORDO_BENCH_REPORT=" + report.string());
        env.push_back(std::string("ORDO_BENCH_REDUCE=") + when);
        std::vector<char*> envp;
        for (auto& v : env) envp.push_back(v.data());
        envp.push_back(nullptr);
        pid_t pid;
        if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0)
          throw std::runtime_error("cannot start rank " + std::to_string(r));
        pids.push_back(pid);
      }
      bool ok = true;
      for (auto pid : pids) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
      }
      if (!ok) throw std::runtime_error("a rank failed");
      std::ifstream in(report);
      auto figures = nlohmann::json::parse(in);
      std::filesystem::remove(report);
      return figures;
    };
    const auto two = with_ranks("during");
    const auto after = with_ranks("after");

    nlohmann::json out;
    out["benchmark"] = "data_parallel_kd_step";
    out["model"] = model_path;
    out["global_batch"] = batch;
    out["seq"] = seq;
    out["timed_steps"] = steps;
    out["one_process"] = {{"threads", threads}, {"tokens_per_s", one.tokens_per_s}, {"step_seconds", one.step_seconds}};
    out["ranks"] = {{"processes", ranks},
                    {"threads_each", std::max(1, threads / ranks)},
                    {"tokens_per_s", two["tokens_per_s"]},
                    {"step_seconds", two["step_seconds"]},
                    {"allreduce_seconds_per_step", two["allreduce_seconds_per_step"]},
                    {"reduced", "during the last backward pass"}};
    out["ranks_reducing_after_backward"] = {{"tokens_per_s", after["tokens_per_s"]},
                                            {"step_seconds", after["step_seconds"]}};
    out["overlap_gain"] = two["tokens_per_s"].get<double>() / after["tokens_per_s"].get<double>();
    // What --dist-overlap auto picks for these ranks on this machine, and its tokens/s over one
    // process's.
    const bool auto_during = ordo::dist::group::core_to_spare(std::thread::hardware_concurrency(), ranks,
                                                              std::max(1, threads / ranks));
    out["auto_reduces"] = auto_during ? "during" : "after";
    out["scaling_efficiency"] = (auto_during ? two : after)["tokens_per_s"].get<double>() / one.tokens_per_s;
    out["allreduce_share_of_step"] =
        two["allreduce_seconds_per_step"].get<double>() * two["tokens_per_s"].get<double>() /
        static_cast<double>(batch * seq);
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "ordo-bench-data-parallel: " << e.what() << "\n";
    return 1;
  }
}

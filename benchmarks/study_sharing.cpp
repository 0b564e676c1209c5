// The study's stages with shared prefixes against the ten configurations run one by one, on
// the default model, in the same run: the wall time of each way, the time of every stage
// application, and the ratio. Prints one JSON object.
//
//   ordo-bench-study-sharing [--model FILE] [--corpus DIR] [--calibration 8] [--train 8]
//                            [--seq 64] [--threads 2] [--max-cached 2] [--order shared-first|one-by-one-first]
//
// Shared: ordo::study::execute over ordo::paper_configurations<Prune<30>, Distill<T4, A03>,
// QuantNF4> (22 stage applications with max_cached_models = 2). One by one: Pipeline::run of
// each of the ten from the base model (29 applications). Both use the same data, budget and
// seed, so the same stage costs the same in both; evaluation is left out (it is the same
// per-configuration work in both). The budget is small by default so that the benchmark takes
// minutes; the ratio depends on how the stages' costs compare, not on their absolute size.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <ordo/io/cpu.hpp>  // retain_freed_memory
#include <ordo/paper/paper_study.hpp>  // prepare_data, execute, the stages

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// Records every stage application: its chain prefix (e.g. "P-KD") and seconds.
struct stage_recorder {
  nlohmann::json applications = nlohmann::json::array();
  std::map<std::string, double> seconds_by_stage;  // P, KD, Q, D: summed
  void on_pipeline_start(const ordo::pipeline_event&) {}
  void on_stage_start(const ordo::stage_event& e) {
    std::fprintf(stderr, "\r\033[K  %s ...", std::string(e.prefix).c_str());
  }
  void on_stage_end(const ordo::stage_event& e) {
    const double s = std::chrono::duration<double>(e.elapsed).count();
    const std::string prefix(e.prefix);
    applications.push_back({{"chain", prefix}, {"seconds", s}});
    const auto dash = prefix.rfind('-');
    seconds_by_stage[dash == std::string::npos ? prefix : prefix.substr(dash + 1)] += s;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const bool retains = ordo::io::retain_freed_memory();  // as the tools do
  namespace study = ordo::study;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::cout << "ordo-bench-study-sharing [--model FILE] [--corpus DIR] [--calibration 8] [--train 8]\n"
                   "                         [--seq 64] [--threads 2] [--max-cached 2]\n"
                   "                         [--order shared-first|one-by-one-first]\n";
      return 0;
    }
  const std::string model_path = arg(argc, argv, "model", ordo::model::default_model_path().string());
  const std::string corpus = arg(argc, argv, "corpus", std::string(ORDO_SOURCE_DIR) + "/data/sotu");
  const int threads = std::stoi(arg(argc, argv, "threads", "2"));
  const std::string order = arg(argc, argv, "order", "shared-first");
  if (order != "shared-first" && order != "one-by-one-first") {
    std::cerr << "ordo-bench-study-sharing: --order takes shared-first or one-by-one-first\n";
    return 2;
  }
  at::set_num_threads(threads);

  ordo::Budget budget;
  budget.calibration_samples = std::stoll(arg(argc, argv, "calibration", "8"));
  budget.train_samples = std::stoll(arg(argc, argv, "train", "8"));
  budget.sequence_length = std::stoll(arg(argc, argv, "seq", "64"));
  budget.epochs = 1;
  budget.batch_size = 4;
  budget.grad_accumulation = 1;
  const std::size_t max_cached = std::stoull(arg(argc, argv, "max-cached", "2"));

  const auto load_start = clock_type::now();
  const ordo::DenseModel base = ordo::DenseModel::load(model_path);
  study::data_sources sources;
  sources.corpus = corpus;  // text only: the benchmark times the stages, not the chat evaluation
  auto data = study::prepare_data(base, sources, budget, 1234);
  ordo::Context& ctx = data.context;
  ctx.teacher = std::make_shared<const ordo::DenseModel>(base);
  const double load_seconds = seconds_since(load_start);

  using P = ordo::Prune<30>;
  using KD = ordo::Distill<ordo::T4, ordo::A03>;
  using Q = ordo::QuantNF4;
  constexpr auto ten = ordo::paper_configurations<P, KD, Q>();

  nlohmann::json shared, alone;
  auto run_shared = [&] {
    std::fprintf(stderr, "ordo-bench-study-sharing: shared prefixes\n");
    stage_recorder rec;
    std::size_t results = 0;
    const auto start = clock_type::now();
    const auto figures = study::execute(
        ten, base, ctx, [&](auto, const auto& model) { results += model.memory_bytes() > 0; },
        study::options{max_cached}, rec);
    shared = {{"wall_seconds", seconds_since(start)},
              {"stage_applications", figures.applications},
              {"training_applications", figures.training_applications},
              {"configurations", results},
              {"seconds_by_stage", rec.seconds_by_stage},
              {"applications", rec.applications}};
    std::fprintf(stderr, "\r\033[K  done in %.1f s\n", shared["wall_seconds"].get<double>());
  };
  auto run_alone = [&] {
    std::fprintf(stderr, "ordo-bench-study-sharing: one by one\n");
    stage_recorder rec;
    nlohmann::json per = nlohmann::json::object();
    const auto start = clock_type::now();
    ordo::for_each_pipeline(ten, [&](auto t) {
      using Pipe = typename decltype(t)::type;
      const auto s = clock_type::now();
      const auto model = Pipe::run(base, ctx, rec);
      per[Pipe::size == 0 ? std::string("base") : std::string(Pipe::name())] = seconds_since(s);
      (void)model.memory_bytes();
    });
    alone = {{"wall_seconds", seconds_since(start)},
             {"stage_applications", rec.applications.size()},
             {"seconds_by_configuration", per},
             {"seconds_by_stage", rec.seconds_by_stage},
             {"applications", rec.applications}};
    std::fprintf(stderr, "\r\033[K  done in %.1f s\n", alone["wall_seconds"].get<double>());
  };
  if (order == "shared-first") {
    run_shared();
    run_alone();
  } else {
    run_alone();
    run_shared();
  }

  nlohmann::json out;
  out["benchmark"] = "study_sharing";
  out["model"] = model_path;
  out["threads"] = threads;
  out["malloc_retains_freed"] = retains;
  out["order"] = order;
  out["budget"] = {{"calibration_samples", ctx.calibration.size()},
                   {"train_samples", budget.train_samples},
                   {"sequence_length", budget.sequence_length},
                   {"epochs", budget.epochs},
                   {"batch_size", budget.batch_size}};
  out["max_cached_models"] = max_cached;
  out["load_seconds"] = load_seconds;
  out["shared"] = shared;
  out["one_by_one"] = alone;
  out["one_by_one_over_shared"] = alone["wall_seconds"].get<double>() / shared["wall_seconds"].get<double>();
  out["applications_saved"] =
      alone["stage_applications"].get<std::size_t>() - shared["stage_applications"].get<std::size_t>();
  std::cout << out.dump(2) << std::endl;
  return 0;
}

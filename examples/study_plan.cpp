// ordo-study-plan: the schedule of the paper's study before any model is touched.
//
// Runs the study executor over the paper's ten configurations (base, P, KD, Q and the six
// orderings) with a stand-in model that only records the chain of stages, so it shows exactly
// what a real study does and in which order: which stage applications run, which intermediate
// models are reused, and what sharing prefixes saves. It is also the smallest example of the
// customization point: stage work is an `apply(stage, model, context)` overload.
//
// Usage: ordo-study-plan [--max-cached N]   (N: intermediate models kept at once; default all)
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ordo/pipeline.hpp>
#include <ordo/study.hpp>

namespace plan {

// A stand-in model: the chain of stages that produced it, and its typestate.
template <class State>
struct model {
  using state = State;
  std::string chain;
};
struct context {};

template <class State, class S>
auto then(const model<State>& m, const S&) {
  return std::string(m.chain.empty() ? "" : m.chain + "-") + std::string(S::symbol);
}
template <int P>
model<ordo::dense> apply(const ordo::Prune<P>& s, const model<ordo::dense>& m, context&) {
  return {then(m, s)};
}
template <class T, class A>
model<ordo::dense> apply(const ordo::Distill<T, A>& s, const model<ordo::dense>& m, context&) {
  return {then(m, s)};
}
template <unsigned long long B, ordo::double_quant DQ>
model<ordo::nf4> apply(const ordo::QuantizeNF4<B, DQ>& s, const model<ordo::dense>& m, context&) {
  return {then(m, s)};
}
inline model<ordo::dense> apply(const ordo::Dequantize& s, const model<ordo::nf4>& m, context&) { return {then(m, s)}; }

struct printer {
  std::vector<std::string> applied;
  void on_pipeline_start(const ordo::pipeline_event& e) {
    applied.clear();
    std::printf("[%2zu/%zu] %-12s", e.index, e.total, std::string(e.pipeline).c_str());
  }
  void on_stage_end(const ordo::stage_event& e) { applied.push_back(std::string(e.stage) + (e.trains ? "*" : "")); }
  void on_pipeline_end(const ordo::pipeline_event& e) {
    std::string line;
    for (const auto& s : applied) line += (line.empty() ? "" : " ") + s;
    const auto stages = std::count(e.pipeline.begin(), e.pipeline.end(), '-') + 1;
    const bool base = e.pipeline == "base";
    const auto reused = base ? 0 : stages - static_cast<long>(applied.size());
    std::printf(" runs %-12s reuses %ld stage%s\n", line.empty() ? "-" : line.c_str(), reused, reused == 1 ? "" : "s");
  }
};

}  // namespace plan

int main(int argc, char** argv) {
  ordo::study::options options;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--max-cached" && i + 1 < argc) {
      // A whole non-negative integer, or an error: "abc" is not 0 and "-1" is not 2^64 - 1.
      const std::string text = argv[++i];
      char* end = nullptr;
      errno = 0;
      const auto n = std::strtoull(text.c_str(), &end, 10);
      if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || errno == ERANGE) {
        std::fprintf(stderr, "ordo-study-plan: --max-cached must be a non-negative integer, not \"%s\"\n", text.c_str());
        return 2;
      }
      options.max_cached_models = n;
    } else {
      std::fprintf(stderr, "usage: %s [--max-cached N]\n", argv[0]);
      return 2;
    }
  }
  using P = ordo::Prune<30>;
  using KD = ordo::Distill<ordo::T4, ordo::A03>;
  using Q = ordo::QuantNF4;
  constexpr auto ten = ordo::paper_configurations<P, KD, Q>();
  using schedule = decltype(ordo::study::plan_of(ten));

  std::printf("The paper's ten configurations in execution order (* = a training stage):\n");
  plan::model<ordo::dense> base;
  plan::context context;
  plan::printer printer;
  const auto figures = ordo::study::execute(
      ten, base, context,
      [](auto t, const auto& result) {
        using Pipe = typename decltype(t)::type;
        const std::string expected = Pipe::size == 0 ? "" : std::string(Pipe::name());
        if (result.chain != expected) std::abort();  // the executor gave the wrong model
      },
      options, printer);

  std::printf("\nstage applications: %zu with shared prefixes, %zu one by one (%.0f%% saved)\n", figures.applications,
              schedule::unshared.applications,
              100.0 * (1.0 - double(figures.applications) / schedule::unshared.applications));
  std::printf("training stages (P, KD): %zu with shared prefixes, %zu one by one\n", figures.training_applications,
              schedule::unshared.training_applications);
  std::printf("intermediate models held at once: at most %zu\n", figures.peak_cached);
}

// The study executor: the paper's ten configurations as a trie, with the recording model.
#include <doctest/doctest.h>

#include <any>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/hana/concat.hpp>
#include <boost/hana/size.hpp>

#include <ordo/pipeline.hpp>
#include <ordo/study.hpp>

#include "../pipeline/recording_model.hpp"

namespace hana = boost::hana;
using P = ordo::Prune<30>;
using KD = ordo::Distill<ordo::T4, ordo::A03>;
using Q = ordo::QuantNF4;

constexpr auto ten = ordo::paper_configurations<P, KD, Q>();
using ten_plan = decltype(ordo::study::plan_of(ten));

// The figures of the schedule, known before anything runs.
static_assert(ten_plan::count == 10);
static_assert(ten_plan::unshared.applications == 29);
static_assert(ten_plan::unshared.training_applications == 14);
static_assert(ten_plan::prefixes.size == 22);  // distinct trie nodes
static_assert(ten_plan::schedule().applications == 22);
static_assert(ten_plan::schedule().training_applications == 10);
static_assert(ten_plan::schedule().peak_cached == 2);  // "Q" and "Q-D" at once
static_assert(ten_plan::schedule(0).applications == 29);
static_assert(ten_plan::schedule(1).applications == 23);

// Results of each configuration as if run alone.
std::map<std::string, std::vector<std::string>> run_alone(recording::context& ctx) {
  std::map<std::string, std::vector<std::string>> out;
  recording::model<ordo::dense> base;
  ordo::for_each_pipeline(ten, [&](auto t) {
    using Pipe = typename decltype(t)::type;
    auto m = Pipe::run(base, ctx);
    out[std::string(Pipe::name())] = m.applied;
  });
  return out;
}

struct collected {
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::string>> applied;
  std::map<std::string, std::uint64_t> digest;
};

collected run_shared(recording::context& ctx, ordo::study::options opts, ordo::study::run_figures& figures) {
  collected out;
  recording::model<ordo::dense> base;
  figures = ordo::study::execute(
      ten, base, ctx,
      [&](auto t, const auto& model) {
        using Pipe = typename decltype(t)::type;
        static_assert(std::is_same_v<typename std::decay_t<decltype(model)>::state, typename Pipe::output_state>);
        const std::string name(Pipe::name());
        out.order.push_back(name);
        out.applied[name] = model.applied;
        out.digest[name] = model.digest;
      },
      opts);
  return out;
}

TEST_CASE("the ten configurations take 22 stage applications instead of 29, 10 training instead of 14") {
  recording::context alone_ctx;
  const auto alone = run_alone(alone_ctx);
  CHECK(alone_ctx.applications == 29);
  CHECK(alone_ctx.training_applications == 14);

  recording::context ctx;
  ordo::study::run_figures figures;
  const auto shared = run_shared(ctx, {}, figures);
  CHECK(ctx.applications == 22);  // counted by the model's stage overloads
  CHECK(ctx.training_applications == 10);
  CHECK(figures.applications == 22);
  CHECK(figures.training_applications == 10);
  CHECK(figures.pipelines == 10);
  CHECK(static_cast<ordo::study::schedule_figures>(figures) == ten_plan::schedule());
  CHECK(shared.applied == alone);  // every configuration equals its pipeline run alone
}

TEST_CASE("each shared prefix runs once") {
  recording::context ctx;
  ordo::study::run_figures figures;
  (void)run_shared(ctx, {}, figures);
  std::map<std::string, int> times;
  for (const auto& chain : ctx.log) ++times[chain];
  CHECK(times.size() == 22);
  for (const auto& [chain, n] : times) CHECK_MESSAGE(n == 1, chain);
}

TEST_CASE("deterministic order: the trie's depth-first pre-order") {
  recording::context ctx;
  ordo::study::run_figures figures;
  const auto first = run_shared(ctx, {}, figures);
  CHECK(first.order == std::vector<std::string>{"base", "P", "P-KD-Q", "P-Q-D-KD-Q", "KD", "KD-P-Q", "KD-Q-D-P-Q", "Q",
                                                "Q-D-KD-P-Q", "Q-D-P-KD-Q"});
  recording::context again_ctx;
  const auto again = run_shared(again_ctx, {}, figures);
  CHECK(again.order == first.order);
  CHECK(again_ctx.log == ctx.log);
  CHECK(again.digest == first.digest);
}

TEST_CASE("a cache bound trades recomputation for memory; results do not change") {
  recording::context alone_ctx;
  const auto alone = run_alone(alone_ctx);
  const std::map<std::size_t, ordo::study::schedule_figures> expected{{0, ten_plan::schedule(0)},
                                                                      {1, ten_plan::schedule(1)},
                                                                      {2, ten_plan::schedule(2)},
                                                                      {ordo::study::unbounded, ten_plan::schedule()}};
  for (const auto& [bound, plan] : expected) {
    CAPTURE(bound);
    recording::context ctx;
    ordo::study::run_figures figures;
    const auto shared = run_shared(ctx, {.max_cached_models = bound}, figures);
    CHECK(shared.applied == alone);
    CHECK(static_cast<std::size_t>(ctx.applications) == plan.applications);
    CHECK(figures.peak_cached <= bound);
    CHECK(static_cast<ordo::study::schedule_figures>(figures) == plan);
  }
  CHECK(ten_plan::schedule(0).peak_cached == 0);
  CHECK(ten_plan::schedule(2).applications == 22);
}

// The study's default set: the ten and the seven that prune with FLAP's importance.
using P_flap = ordo::Prune<30, ordo::importance::flap>;
constexpr auto seventeen = hana::concat(hana::concat(ten, hana::tuple_t<ordo::Pipeline<P_flap>>),
                                        ordo::paper_orderings<P_flap, KD, Q>());
using seventeen_plan = decltype(ordo::study::plan_of(seventeen));
static_assert(seventeen_plan::count == 17);
static_assert(seventeen_plan::schedule().training_applications == 18);
// Its default bound of two cached models trains nothing twice: the cache, full with Q and Q-D,
// gives way to Q-D-KD (which Q-KD-P and Q-KD-P[flap] share) rather than train it again.
static_assert(seventeen_plan::schedule(2).training_applications == 18);
static_assert(seventeen_plan::schedule(2).applications == seventeen_plan::schedule().applications + 2);  // Q, D again

TEST_CASE("a full cache gives way to a trained model: the executor follows the schedule") {
  for (std::size_t bound : {std::size_t{1}, std::size_t{2}, std::size_t{3}, ordo::study::unbounded}) {
    CAPTURE(bound);
    recording::context alone_ctx, ctx;
    recording::model<ordo::dense> base;
    std::map<std::string, std::vector<std::string>> alone, shared;
    ordo::for_each_pipeline(seventeen, [&](auto t) {
      using Pipe = typename decltype(t)::type;
      alone[std::string(Pipe::name())] = Pipe::run(base, alone_ctx).applied;
    });
    const auto figures = ordo::study::execute(
        seventeen, base, ctx,
        [&](auto t, const auto& model) { shared[std::string(decltype(t)::type::name())] = model.applied; },
        {.max_cached_models = bound});
    CHECK(shared == alone);
    CHECK(static_cast<ordo::study::schedule_figures>(figures) == seventeen_plan::schedule(bound));
    CHECK(figures.peak_cached <= bound);
    if (bound >= 2) CHECK(ctx.training_applications == 18);  // no stage that trains runs twice
  }
}

struct progress {
  std::vector<std::string> lines;
  void on_pipeline_start(const ordo::pipeline_event& e) {
    lines.push_back("[" + std::to_string(e.index) + "/" + std::to_string(e.total) + "] " + std::string(e.pipeline));
  }
  void on_stage_end(const ordo::stage_event& e) {
    lines.push_back("  " + std::string(e.prefix) + " #" + std::to_string(e.sequence) + "/" + std::to_string(e.planned));
  }
};

TEST_CASE("events: one per pipeline and per stage application, numbered against the plan") {
  recording::model<ordo::dense> base;
  recording::context ctx;
  progress log;
  auto figures = ordo::study::execute(
      ten, base, ctx, [](auto, const auto&) {}, {}, log);
  CHECK(figures.applications == 22);
  REQUIRE(log.lines.size() == 10 + 22);
  CHECK(log.lines[0] == "[1/10] base");
  CHECK(log.lines[1] == "[2/10] P");
  CHECK(log.lines[2] == "  P #1/22");
  CHECK(log.lines[3] == "[3/10] P-KD-Q");
  CHECK(log.lines[4] == "  P-KD #2/22");  // P is reused, not recomputed
  CHECK(log.lines[5] == "  P-KD-Q #3/22");
  CHECK(log.lines.back() == "  Q-D-P-KD-Q #22/22");
}

TEST_CASE("any set of pipelines, e.g. all valid orders of four stages") {
  using D = ordo::Dequantize;
  auto pipelines = hana::make_tuple(hana::type_c<ordo::Pipeline<P, KD>>, hana::type_c<ordo::Pipeline<P, KD, Q>>,
                                    hana::type_c<ordo::Pipeline<P, KD, Q, D>>, hana::type_c<ordo::Pipeline<KD, P>>);
  using plan = decltype(ordo::study::plan_of(pipelines));
  static_assert(plan::schedule().applications == 6);  // P, P-KD, P-KD-Q, P-KD-Q-D, KD, KD-P
  recording::model<ordo::dense> base;
  recording::context ctx;
  std::vector<std::string> order;
  auto figures = ordo::study::execute(pipelines, base, ctx, [&](auto t, const auto& m) {
    using Pipe = typename decltype(t)::type;
    order.emplace_back(Pipe::name());
    CHECK(m.applied.size() == Pipe::size);
  });
  CHECK(figures.applications == 6);
  CHECK(order == std::vector<std::string>{"P-KD", "P-KD-Q", "P-KD-Q-D", "KD-P"});
}

// A store in memory, as a study's on-disk store would be across processes.
struct memory_store {
  std::set<std::string> finished_pipelines;  // what the sink saw in earlier runs
  std::map<std::string, std::any> models;    // by "index:name"
  int saves = 0, loads = 0;
  static std::string id(const ordo::study::prefix_key& k) { return std::to_string(k.index) + ":" + std::string(k.name); }
  bool finished(const ordo::pipeline_event& e) const { return finished_pipelines.count(std::string(e.pipeline)) > 0; }
  template <class M>
  std::optional<M> load(const ordo::study::prefix_key& k) {
    const auto it = models.find(id(k));
    if (it == models.end()) return std::nullopt;
    ++loads;
    return std::any_cast<M>(it->second);
  }
  template <class M>
  void save(const ordo::study::prefix_key& k, const M& m) {
    ++saves;
    models[id(k)] = m;
  }
  void drop(const ordo::study::prefix_key& k) { models.erase(id(k)); }
  bool has(const ordo::study::prefix_key& k) const { return models.count(id(k)) > 0; }
};

// The stage numbers a run prints: "stage 3/7" counts this run's applications against what it
// will compute (a resumed run leaves out what an earlier one finished or stored).
// The same for the applications that train (what the study's time estimate counts).
struct stage_numbers {
  std::size_t last = 0, planned = 0, events = 0, trained = 0, planned_training = 0;
  bool numbered = true;  // each event's number is one more than the previous one's
  void on_stage_start(const ordo::stage_event& e) {
    numbered = numbered && e.sequence == last + 1 && (events == 0 || e.planned == planned);
    if (e.trains) ++trained;
    numbered = numbered && e.training_sequence == trained && (events == 0 || e.planned_training == planned_training);
    last = e.sequence;
    planned = e.planned;
    planned_training = e.planned_training;
    ++events;
  }
};

struct killed {};  // what a kill after the sink's n-th call looks like to the test

TEST_CASE("a run stopped after any configuration resumes from its store with an uninterrupted run's results") {
  recording::context alone_ctx;
  const auto alone = run_alone(alone_ctx);
  for (std::size_t bound : {ordo::study::unbounded, std::size_t{2}, std::size_t{1}, std::size_t{0}}) {
    for (int stop_after = 1; stop_after < 10; ++stop_after) {
      CAPTURE(bound);
      CAPTURE(stop_after);
      memory_store store;
      std::map<std::string, std::vector<std::string>> applied;
      auto sink = [&](auto t, const auto& model) {
        using Pipe = typename decltype(t)::type;
        applied[std::string(Pipe::name())] = model.applied;
        store.finished_pipelines.insert(std::string(Pipe::name()));
        if (static_cast<int>(store.finished_pipelines.size()) == stop_after) throw killed{};
      };
      recording::model<ordo::dense> base;
      recording::context first_ctx, second_ctx;
      stage_numbers first, second;
      CHECK_THROWS_AS(ordo::study::execute(ten, base, first_ctx, sink, {.max_cached_models = bound}, first, store),
                      killed);
      if (first.events > 0) {  // none after base
        CHECK(first.planned == ten_plan::schedule(bound).applications);
        CHECK(first.planned_training == ten_plan::schedule(bound).training_applications);
      }
      const auto figures =
          ordo::study::execute(ten, base, second_ctx, sink, {.max_cached_models = bound}, second, store);
      // The resumed run numbers its stages 1..n of the n it computes.
      CHECK(second.numbered);
      CHECK(second.last == second.planned);
      CHECK(second.trained == second.planned_training);
      CHECK(second.events == static_cast<std::size_t>(second_ctx.applications));
      CHECK(applied == alone);  // every configuration once, each equal to its pipeline run alone
      CHECK(figures.skipped == static_cast<std::size_t>(stop_after));
      CHECK(figures.pipelines == 10 - static_cast<std::size_t>(stop_after));
      CHECK(figures.loaded == static_cast<std::size_t>(store.loads));
      // What the first run kept is read back, not computed again: together no more stage
      // applications than one uninterrupted run.
      CHECK(static_cast<std::size_t>(first_ctx.applications + second_ctx.applications) <=
            ten_plan::schedule(bound).applications);
      CHECK(store.models.empty());  // every stored model is dropped after its last use
      if (bound == 0) CHECK(store.saves == 0);
      if (bound > 0 && stop_after == 2) CHECK(store.loads == 1);  // P (after base), kept for P-KD-Q
    }
  }
}

TEST_CASE("without a store nothing is skipped or loaded") {
  recording::context ctx;
  ordo::study::run_figures figures;
  (void)run_shared(ctx, {}, figures);
  CHECK(figures.skipped == 0);
  CHECK(figures.loaded == 0);
  CHECK(figures.pipelines == 10);
}

// What ordo-compress does: one pipeline, every trained stage's output offered to the store.
struct kill_at_stage {
  std::size_t at = 0;  // the sequence number of the stage application that is killed as it starts
  std::size_t started = 0;
  void on_stage_start(const ordo::stage_event&) {
    if (++started == at) throw killed{};
  }
};

TEST_CASE("store_trained_outputs: one pipeline killed at any stage resumes after its last trained stage") {
  constexpr auto one = hana::make_tuple(hana::type_c<ordo::Pipeline<P, KD, Q>>);
  recording::context alone_ctx;
  recording::model<ordo::dense> base;
  const auto alone = ordo::Pipeline<P, KD, Q>::run(base, alone_ctx).applied;
  // Killed as stage k starts: the trained stages before it are in the store (the last of them
  // only: P is dropped once KD is stored), and the second run applies the rest.
  const std::size_t stored_before[] = {0, 0, 1, 2};  // by k: the stages the resumed run skips
  for (std::size_t k = 1; k <= 3; ++k) {
    CAPTURE(k);
    memory_store store;
    std::vector<std::string> applied;
    auto sink = [&](auto, const auto& model) { applied = model.applied; };
    recording::context first_ctx, second_ctx;
    kill_at_stage kill{k};
    CHECK_THROWS_AS(ordo::study::execute(one, base, first_ctx, sink, {.store_trained_outputs = true}, kill, store),
                    killed);
    CHECK(applied.empty());
    CHECK(store.models.size() == (k == 1 ? 0u : 1u));  // never more than one stored model
    const memory_store store_before_second = store;
    struct {
      std::vector<std::string> names;
      void on_stage_loaded(std::string_view prefix) { names.emplace_back(prefix); }
    } loaded;
    const auto figures =
        ordo::study::execute(one, base, second_ctx, sink, {.store_trained_outputs = true}, loaded, store);
    {  // the stage numbers of a third run from the same state as the second: 1..n of n
      memory_store again = store_before_second;
      stage_numbers numbers;
      recording::context third_ctx;
      (void)ordo::study::execute(one, base, third_ctx, [](auto, const auto&) {}, {.store_trained_outputs = true}, numbers,
                                 again);
      CHECK(numbers.numbered);
      CHECK(numbers.last == numbers.planned);
      CHECK(numbers.trained == numbers.planned_training);
      CHECK(numbers.events == 3 - stored_before[k]);
    }
    CHECK(applied == alone);
    CHECK(loaded.names == (k == 1   ? std::vector<std::string>{}
                           : k == 2 ? std::vector<std::string>{"P"}
                                    : std::vector<std::string>{"P-KD"}));  // told to the observer
    CHECK(second_ctx.applications == static_cast<int>(3 - stored_before[k]));
    CHECK(figures.loaded == (k == 1 ? 0u : 1u));
    CHECK(store.models.empty());  // dropped after the pipeline's end
    CHECK(store.saves == 2);  // P and KD, each saved once over both runs
  }
}

TEST_CASE("store_trained_outputs keeps the ten configurations' results and leaves an empty store") {
  recording::context alone_ctx;
  const auto alone = run_alone(alone_ctx);
  memory_store store;
  std::map<std::string, std::vector<std::string>> applied;
  auto sink = [&](auto t, const auto& model) { applied[std::string(decltype(t)::type::name())] = model.applied; };
  recording::model<ordo::dense> base;
  recording::context ctx;
  ordo::detail::no_observer none;
  for (std::size_t bound : {ordo::study::unbounded, std::size_t{0}}) {
    CAPTURE(bound);
    applied.clear();
    (void)ordo::study::execute(ten, base, ctx, sink, {.max_cached_models = bound, .store_trained_outputs = true},
                               none, store);
    CHECK(applied == alone);
    CHECK(store.models.empty());
  }
}

TEST_CASE("remaining_time: what is left, from the mean training stage and the mean rest of a configuration") {
  ordo::study::remaining_time left(10);  // ten configurations, eight stage applications that train
  left.plan_training(8);
  left.configuration_started(5.0);  // the first, 5 s in (loading before it): nothing measured yet
  CHECK_FALSE(left.at_configuration_start(5.0).has_value());
  left.trained(20.0);
  left.configuration_started(65.0);  // the second: one configuration done, one training stage
  const auto first = left.at_configuration_start(65.0);
  REQUIRE(first.has_value());
  // 7 training stages x 20 s, and 9 configurations x (65 - 5 - 20) / 1 s: the loading is not one
  CHECK(*first == doctest::Approx(7 * 20.0 + 9 * 40.0));
  left.trained(30.0);
  left.configuration_started(125.0);  // the third: training means 25 s, the rest (125 - 5 - 50) / 2
  CHECK(*left.at_configuration_start(125.0) == doctest::Approx(6 * 25.0 + 8 * 35.0));
  // nothing is negative when the run does more than it planned
  ordo::study::remaining_time over(1);
  over.plan_training(1);
  over.configuration_started(0.0);
  over.trained(10.0);
  over.trained(10.0);
  over.configuration_started(30.0);
  over.configuration_started(40.0);
  CHECK(*over.at_configuration_start(50.0) == doctest::Approx(0.0));
  // without a plan (a run that trains nothing) there is no estimate
  ordo::study::remaining_time unplanned(3);
  unplanned.configuration_started(0.0);
  unplanned.trained(1.0);
  unplanned.configuration_started(1.5);
  CHECK_FALSE(unplanned.at_configuration_start(2.0).has_value());
}

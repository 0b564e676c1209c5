// The pipeline algebra: stages, typestate rules, names, orderings, run-time selection, run.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <boost/hana/at.hpp>     // hana::at_c
#include <boost/hana/equal.hpp>  // == on hana::type
#include <boost/hana/size.hpp>   // hana::size

#include <ordo/pipeline.hpp>

#include "recording_model.hpp"

namespace hana = boost::hana;
using ordo::Dequantize;
using ordo::Pipeline;
using ordo::QuantNF4;
using P = ordo::Prune<30>;
using KD = ordo::Distill<ordo::T4, ordo::A03>;
using Q = ordo::QuantNF4;
using D = ordo::Dequantize;

// ---- the rules, as traits ---------------------------------------------------------------------
static_assert(ordo::is_valid_pipeline_v<P, KD, Q>);
static_assert(ordo::is_valid_pipeline_v<>);  // the base model
static_assert(ordo::is_valid_pipeline_v<Q>);
static_assert(ordo::is_valid_pipeline_v<Q, D>);
static_assert(ordo::is_valid_pipeline_v<Q, D, P, KD, Q>);
static_assert(ordo::is_valid_pipeline_v<P, P, KD, KD>);
static_assert(ordo::is_valid_pipeline_v<Q, D, Q, D, Q>);
static_assert(!ordo::is_valid_pipeline_v<Q, P>);  // stage after QuantNF4
static_assert(!ordo::is_valid_pipeline_v<Q, KD>);
static_assert(!ordo::is_valid_pipeline_v<Q, Q>);  // quantizing twice
static_assert(!ordo::is_valid_pipeline_v<P, Q, KD>);
static_assert(!ordo::is_valid_pipeline_v<D>);  // nothing to dequantize
static_assert(!ordo::is_valid_pipeline_v<P, D>);
static_assert(!ordo::is_valid_pipeline_v<Q, D, D>);  // two Dequantize in a row
static_assert(!ordo::is_valid_pipeline_v<int>);      // not a stage
static_assert(!ordo::is_valid_pipeline_v<P, std::string, Q>);
static_assert(!ordo::is_valid_pipeline_v<ordo::Pipeline<P>>);  // a pipeline is not a stage
static_assert(!ordo::pipeline_is_valid_v<Pipeline<Q, P>>);     // without instantiating it
static_assert(ordo::pipeline_is_valid_v<Pipeline<P, KD, Q>>);

// The first error found, and where (positions from 1).
using ordo::detail::analyze_t;
using ordo::detail::pipeline_error;
static_assert(analyze_t<Q, P>::error == pipeline_error::quantization_last);
static_assert(analyze_t<Q, P>::position == 2);
static_assert(std::is_same_v<analyze_t<Q, P>::offending_stage, P>);
static_assert(std::is_same_v<analyze_t<Q, P>::changer, Q>);
static_assert(analyze_t<P, KD, Q, D, D>::error == pipeline_error::dequantize_twice);
static_assert(analyze_t<P, KD, Q, D, D>::position == 5);
static_assert(analyze_t<P, D>::error == pipeline_error::nothing_to_dequantize);
static_assert(analyze_t<P, int>::error == pipeline_error::not_a_stage);
static_assert(analyze_t<P, int>::position == 2);

// Typestate of the result.
static_assert(std::is_same_v<Pipeline<P, KD, Q>::output_state, ordo::nf4>);
static_assert(std::is_same_v<Pipeline<Q, D>::output_state, ordo::dense>);
static_assert(std::is_same_v<Pipeline<>::output_state, ordo::dense>);

// Stage parameters.
static_assert(P::percent == 30 && KD::temperature == 4.0 && KD::alpha == 0.3);
static_assert(Q::blocksize == 64 && Q::double_quantization);
static_assert(ordo::QuantizeNF4<128, ordo::double_quant::off>::blocksize == 128);
static_assert(!ordo::QuantizeNF4<32, ordo::double_quant::off>::double_quantization);
static_assert(ordo::alpha<0>::value == 0.0 && ordo::alpha<1>::value == 1.0);
static_assert(ordo::temperature<3, 2>::value == 1.5);

// Names.
static_assert(Pipeline<P, KD, Q>::name() == "P-KD-Q");
static_assert(Pipeline<Q, D, P, KD, Q>::name() == "Q-D-P-KD-Q");
static_assert(Pipeline<>::name() == "base");
static_assert(ordo::pipeline_name_v<Pipeline<Q, P>> == "Q-P");  // invalid, still nameable
static_assert(ordo::paper_notation_v<Pipeline<Q, D, P, KD, Q>> == "Q-P-KD");
static_assert(ordo::paper_notation_v<Pipeline<P, KD, Q>> == "P-KD-Q");
static_assert(ordo::paper_notation_v<Pipeline<Q, D>> == "Q-D");  // not an expansion
static_assert(std::is_same_v<ordo::paper_pipeline_t<Q, P, KD>, Pipeline<Q, D, P, KD, Q>>);
static_assert(std::is_same_v<ordo::paper_pipeline_t<P, Q, KD>, Pipeline<P, Q, D, KD, Q>>);
static_assert(std::is_same_v<ordo::paper_pipeline_t<P, KD, Q>, Pipeline<P, KD, Q>>);
static_assert(Pipeline<P, KD, Q>::training_stages == 2);
static_assert(Pipeline<Q, D, P, KD, Q>::training_stages == 2);

template <class Tuple>
std::set<std::string> names_of(const Tuple& pipelines) {
  std::set<std::string> out;
  ordo::for_each_pipeline(pipelines,
                          [&](auto t) { out.insert(std::string(ordo::pipeline_name_v<typename decltype(t)::type>)); });
  return out;
}

TEST_CASE("descriptions name the parameters") {
  CHECK(Pipeline<P, KD, Q>::description() ==
        "Prune<30> -> Distill<T=4, alpha=0.3> -> QuantNF4<blocksize=64, double_quant=on>");
  CHECK(Pipeline<>::description() == "base");
  CHECK(Pipeline<ordo::QuantizeNF4<128, ordo::double_quant::off>, D>::description() ==
        "QuantNF4<blocksize=128, double_quant=off> -> Dequantize");
}

TEST_CASE("permutations: every order, valid or not, compared as a set") {
  constexpr auto six = ordo::permutations<P, KD, Q>();
  static_assert(hana::size(six) == hana::size_c<6>);
  CHECK(names_of(six) == std::set<std::string>{"P-KD-Q", "P-Q-KD", "KD-P-Q", "KD-Q-P", "Q-P-KD", "Q-KD-P"});
  std::set<std::string> valid;
  ordo::for_each_pipeline(six, [&](auto t) {
    using Pipe = typename decltype(t)::type;
    if (ordo::pipeline_is_valid_v<Pipe>) valid.insert(std::string(ordo::pipeline_name_v<Pipe>));
  });
  CHECK(valid == std::set<std::string>{"P-KD-Q", "KD-P-Q"});

  constexpr auto twenty_four = ordo::permutations<P, KD, Q, D>();
  static_assert(hana::size(twenty_four) == hana::size_c<24>);
  CHECK(names_of(twenty_four).size() == 24);
}

TEST_CASE("paper_orderings: the six, expanded, sorted by name, all valid") {
  constexpr auto six = ordo::paper_orderings<P, KD, Q>();
  std::vector<std::string> names;
  ordo::for_each_pipeline(six, [&](auto t) {
    using Pipe = typename decltype(t)::type;
    static_assert(ordo::pipeline_is_valid_v<Pipe>);
    static_assert(std::is_same_v<typename Pipe::output_state, ordo::nf4>);
    names.emplace_back(Pipe::name());
  });
  CHECK(names == std::vector<std::string>{"KD-P-Q", "KD-Q-D-P-Q", "P-KD-Q", "P-Q-D-KD-Q", "Q-D-KD-P-Q", "Q-D-P-KD-Q"});
  std::set<std::string> paper;
  ordo::for_each_pipeline(
      six, [&](auto t) { paper.insert(std::string(ordo::paper_notation_v<typename decltype(t)::type>)); });
  CHECK(paper == std::set<std::string>{"P-KD-Q", "P-Q-KD", "KD-P-Q", "KD-Q-P", "Q-P-KD", "Q-KD-P"});
}

TEST_CASE("paper_configurations: base, P, KD, Q and the six") {
  constexpr auto ten = ordo::paper_configurations<P, KD, Q>();
  static_assert(hana::size(ten) == hana::size_c<10>);
  static_assert(hana::at_c<0>(ten) == hana::type_c<Pipeline<>>);
  static_assert(hana::at_c<1>(ten) == hana::type_c<Pipeline<P>>);
  CHECK(names_of(ten).size() == 10);
  CHECK(names_of(ten).count("base") == 1);
}

TEST_CASE("two_stage_orderings and every_configuration: every order of every subset") {
  constexpr auto six = ordo::two_stage_orderings<P, KD, Q>();
  static_assert(hana::size(six) == hana::size_c<6>);
  std::vector<std::string> names;
  std::set<std::string> paper;
  ordo::for_each_pipeline(six, [&](auto t) {
    using Pipe = typename decltype(t)::type;
    static_assert(ordo::pipeline_is_valid_v<Pipe>);
    names.emplace_back(Pipe::name());
    paper.insert(std::string(ordo::paper_notation_v<Pipe>));
  });
  CHECK(names == std::vector<std::string>{"KD-P", "KD-Q", "P-KD", "P-Q", "Q-D-KD-Q", "Q-D-P-Q"});
  CHECK(paper == std::set<std::string>{"KD-P", "KD-Q", "P-KD", "P-Q", "Q-KD", "Q-P"});
  static_assert(std::is_same_v<ordo::paper_pipeline_t<Q, P>, Pipeline<Q, D, P, Q>>);

  constexpr auto sixteen = ordo::every_configuration<P, KD, Q>();
  static_assert(hana::size(sixteen) == hana::size_c<16>);
  static_assert(hana::at_c<0>(sixteen) == hana::type_c<Pipeline<>>);
  const auto all = names_of(sixteen);
  CHECK(all.size() == 16);  // no name twice
  for (const auto& n : names_of(ordo::paper_configurations<P, KD, Q>())) CHECK(all.count(n) == 1);
  ordo::for_each_pipeline(sixteen, [](auto t) { static_assert(ordo::pipeline_is_valid_v<typename decltype(t)::type>); });
  // with_pipeline finds the two-stage ones by chain and by the paper's notation.
  auto chain_of = [&](std::string_view name) {
    return ordo::with_pipeline(name, sixteen, [](auto t) { return std::string(decltype(t)::type::name()); });
  };
  CHECK(chain_of("q-kd") == "Q-D-KD-Q");
  CHECK(chain_of("P-KD") == "P-KD");
  CHECK(chain_of("Q-D-P-Q") == "Q-D-P-Q");
  CHECK_THROWS_AS(chain_of("P-Q-P"), ordo::unknown_pipeline);
}

TEST_CASE("with_pipeline: chain names, paper notation, case and spaces") {
  constexpr auto ten = ordo::paper_configurations<P, KD, Q>();
  auto name_of = [&](std::string_view name) {
    return ordo::with_pipeline(name, ten, [](auto t) {
      using Pipe = typename decltype(t)::type;
      return std::string(Pipe::name());
    });
  };
  CHECK(name_of("P-KD-Q") == "P-KD-Q");
  CHECK(name_of("Q-P-KD") == "Q-D-P-KD-Q");
  CHECK(name_of("Q-D-P-KD-Q") == "Q-D-P-KD-Q");
  CHECK(name_of("  kd-q-p ") == "KD-Q-D-P-Q");
  CHECK(name_of("base") == "base");
  CHECK(name_of("Q") == "Q");

  int calls = 0;
  ordo::with_pipeline("P", ten, [&](auto) { ++calls; });  // a callable returning void
  CHECK(calls == 1);
}

TEST_CASE("with_pipeline: an unknown name is an error listing the valid names") {
  constexpr auto ten = ordo::paper_configurations<P, KD, Q>();
  try {
    ordo::with_pipeline("P-Q", ten, [](auto) { return 0; });
    FAIL("no exception");
  } catch (const ordo::unknown_pipeline& e) {
    const std::string what = e.what();
    CHECK(what.find("unknown pipeline 'P-Q'") != std::string::npos);
    for (const char* name : {"base", "P-KD-Q", "Q-D-P-KD-Q (paper: Q-P-KD)", "KD-Q-D-P-Q (paper: KD-Q-P)", "KD-P-Q"}) {
      CHECK_MESSAGE(what.find(name) != std::string::npos, name);
    }
  }
  CHECK_THROWS_AS(ordo::with_pipeline("", ten, [](auto) {}), std::invalid_argument);
}

TEST_CASE("run applies the stages in order; the result type follows the typestate") {
  recording::model<ordo::dense> base;
  recording::context ctx;
  auto quantized = Pipeline<P, KD, Q>::run(base, ctx);
  static_assert(std::is_same_v<decltype(quantized), recording::model<ordo::nf4>>);
  CHECK(quantized.applied ==
        std::vector<std::string>{"Prune<30>", "Distill<T=4, alpha=0.3>", "QuantNF4<blocksize=64, double_quant=on>"});
  CHECK(ctx.applications == 3);
  CHECK(ctx.training_applications == 2);

  auto dense_again = Pipeline<Q, D>::run(base, ctx);
  static_assert(std::is_same_v<decltype(dense_again), recording::model<ordo::dense>>);

  auto same = Pipeline<>::run(base, ctx);
  CHECK(same == base);
  CHECK(ctx.applications == 5);
}

struct event_log {
  std::vector<std::string> lines;
  std::vector<std::chrono::nanoseconds> elapsed;  // of each stage, from on_stage_end
  void on_stage_start(const ordo::stage_event& e) {
    lines.push_back("start " + std::string(e.prefix) + " " + std::to_string(e.position) + "/" +
                    std::to_string(e.length) + " #" + std::to_string(e.sequence) + " of " + std::to_string(e.planned) +
                    (e.trains ? " trains" : ""));
  }
  void on_stage_end(const ordo::stage_event& e) {
    elapsed.push_back(e.elapsed);
    lines.push_back("end " + std::string(e.stage) + " of " + std::string(e.pipeline));
  }
};

TEST_CASE("run reports start and end of every stage") {
  recording::model<ordo::dense> base;
  recording::context ctx;
  event_log log;
  const auto started = std::chrono::steady_clock::now();
  (void)Pipeline<Q, D, KD, Q>::run(base, ctx, log);
  const std::chrono::nanoseconds wall = std::chrono::steady_clock::now() - started;
  CHECK(log.lines == std::vector<std::string>{"start Q 1/4 #1 of 4", "end Q of Q-D-KD-Q", "start Q-D 2/4 #2 of 4",
                                              "end D of Q-D-KD-Q", "start Q-D-KD 3/4 #3 of 4 trains",
                                              "end KD of Q-D-KD-Q", "start Q-D-KD-Q 4/4 #4 of 4", "end Q of Q-D-KD-Q"});
  // Each stage's time is measured inside the run: the stages together took no longer than the
  // whole run, and some time (each copies the model's vectors and strings).
  REQUIRE(log.elapsed.size() == 4);
  std::chrono::nanoseconds stages{0};
  for (const auto e : log.elapsed) {
    CHECK(e <= wall);
    stages += e;
  }
  CHECK(stages <= wall);
  CHECK(stages > std::chrono::nanoseconds{0});
}

// ordo/study/executor.hpp — runs many pipelines on one base model, sharing common prefixes.
//
//   auto ten = ordo::paper_configurations<P, KD, Q>();
//   auto figures = ordo::study::execute(ten, base_model, context,
//       [&](auto t, const auto& model) {            // once per pipeline, in plan order
//         using Pipe = typename decltype(t)::type;  // e.g. ordo::Pipeline<P, KD, Q>
//         report(Pipe::name(), evaluate(model));
//       },
//       {.max_cached_models = 2}, observer);
//
// Stage work goes through ordo::apply_stage (one customization point), so the executor knows
// nothing of torch: tests run it on a model type that records the stages applied. Pipelines
// run in the trie's depth-first order (plan.hpp); a model is computed from the deepest cached
// prefix of its pipeline, and kept for later pipelines while fewer than `max_cached_models`
// are held. Each pipeline's result is the model Pipeline::run would give on its own (stages
// must be deterministic functions of their input model and context for this to hold).
//
// Memory: besides the caller's base model and the cache, at most two models are alive at a
// time (the stage's input, when not cached, and its output).
//
// A store (optional, last argument) makes a run that was killed resumable: the executor asks it
// whether a pipeline was finished by an earlier run (then it neither computes nor reports it),
// offers it every model it keeps in its cache (and, with options::store_trained_outputs, every
// output of a stage that trains) so that the next run can read it instead of computing it again,
// and tells it when such a model is needed no more. Members:
//
//   bool finished(const ordo::pipeline_event&);           // true: skip this pipeline
//   template <class M> std::optional<M> load(const ordo::study::prefix_key&);  // called as
//                                                         //   store.template load<M>(key)
//   template <class M> void save(const ordo::study::prefix_key&, const M&);
//   void drop(const ordo::study::prefix_key&);            // the prefix's last use has passed
//   bool has(const ordo::study::prefix_key&);             // optional: it holds that model (a
//                                                         //   resumed run's stage count then
//                                                         //   leaves out what it will load)
//
// The results stay those of an uninterrupted run as long as the store gives back the models it
// was given, bit for bit.
#pragma once

#include <chrono>    // std::chrono::steady_clock
#include <cstddef>   // std::size_t
#include <optional>     // std::optional
#include <string_view>  // std::string_view
#include <tuple>        // std::tuple
#include <type_traits>  // std::integral_constant
#include <utility>   // std::index_sequence, std::move

#include <boost/hana/type.hpp>    // hana::type_c
#include <boost/hana/unpack.hpp>  // hana::unpack

#include <ordo/pipeline/apply.hpp>      // apply_stage, apply_result_t
#include <ordo/pipeline/type_list.hpp>  // type_list, at_t, take_t
#include <ordo/pipeline/events.hpp>     // stage_event, pipeline_event
#include <ordo/pipeline/pipeline.hpp>   // Pipeline, pipeline_name_v
#include <ordo/study/plan.hpp>          // plan, schedule_figures

namespace ordo::study {

struct options {
  /// Most intermediate models held for reuse at once (0: nothing is shared).
  std::size_t max_cached_models = unbounded;
  /// Offer the store the output of every stage that trains (S::trains), held in the cache or
  /// not, and drop the stored model it was computed from once nothing else needs it: a killed
  /// run of a single pipeline (ordo-compress) then resumes after its last finished training stage.
  bool store_trained_outputs = false;
};

/// What a run did, measured (equal to plan<...>::schedule(bound) for deterministic stages and
/// no store).
struct run_figures : schedule_figures {
  std::size_t pipelines = 0;  ///< pipelines computed and given to the sink
  std::size_t skipped = 0;    ///< pipelines the store had seen finished
  std::size_t loaded = 0;     ///< stage outputs read from the store instead of computed
  std::chrono::nanoseconds elapsed{};
};

/// A node of the plan's trie as the store sees it: `index` is the node's number in the plan
/// (plan<...>::prefixes; stable for a given set of pipelines) and `name` its chain ("P-KD").
/// Names alone may repeat (Prune<30> and Prune<50> are both "P"); index and name together do not.
struct prefix_key {
  std::size_t index = 0;
  std::string_view name;
};

/// The store of a run that is not to be resumed.
struct no_store {
  bool finished(const pipeline_event&) const { return false; }
  template <class M>
  std::optional<M> load(const prefix_key&) const {
    return std::nullopt;
  }
  template <class M>
  void save(const prefix_key&, const M&) const {}
  void drop(const prefix_key&) const {}
};

namespace detail {
using ordo::meta::at_t;
using ordo::meta::take_t;
using ordo::meta::type_list;

template <class M, class C, class List>
struct model_after;
template <class M, class C>
struct model_after<M, C, type_list<>> {
  using type = M;
};
template <class M, class C, class S, class... Rest>
struct model_after<M, C, type_list<S, Rest...>> {
  using type = typename model_after<ordo::apply_result_t<S, M, C>, C, type_list<Rest...>>::type;
};

// A model that is either borrowed (from the cache or the caller) or owned.
template <class M>
class model_ref {
 public:
  explicit model_ref(const M* borrowed) : borrowed_(borrowed) {}
  explicit model_ref(M&& owned) : owned_(std::move(owned)) {}
  const M& get() const { return owned_ ? *owned_ : *borrowed_; }

 private:
  const M* borrowed_ = nullptr;
  std::optional<M> owned_;
};

template <class Pipelines, class Model, class Context, class Observer, class Store>
class trie_runner;

template <class... Pipelines, class Model, class Context, class Observer, class Store>
class trie_runner<type_list<Pipelines...>, Model, Context, Observer, Store> {
  using plan_type = plan<Pipelines...>;
  using pipelines = type_list<Pipelines...>;
  static constexpr auto& table = plan_type::prefixes;

  template <std::size_t P>
  using prefix_stages = take_t<table.depth[P], pipeline_stages_t<at_t<table.config[P], pipelines>>>;
  template <std::size_t P>
  using prefix_model = typename model_after<Model, Context, prefix_stages<P>>::type;

  template <std::size_t... P>
  static auto make_cache(std::index_sequence<P...>) -> std::tuple<std::optional<prefix_model<P>>...>;
  using cache_type = decltype(make_cache(std::make_index_sequence<table.size>{}));

 public:
  trie_runner(const Model& base, Context& context, Observer& observer, Store& store, options opts)
      : base_(base), context_(context), observer_(observer), store_(store), options_(opts) {}

  template <class Sink>
  run_figures run(Sink& sink) {
    const auto started = std::chrono::steady_clock::now();
    const auto planned = plan_type::schedule(
        options_.max_cached_models,
        start_state(std::make_index_sequence<plan_type::count>{}, std::make_index_sequence<table.size>{}));
    planned_ = planned.applications;
    planned_training_ = planned.training_applications;
    run_positions(sink, std::make_index_sequence<plan_type::count>{});
    figures_.elapsed = std::chrono::steady_clock::now() - started;
    return figures_;
  }

 private:
  template <class Sink, std::size_t... Pos>
  void run_positions(Sink& sink, std::index_sequence<Pos...>) {
    (run_position<Pos>(sink), ...);
  }

  template <std::size_t Pos, class Sink>
  void run_position(Sink& sink) {
    constexpr std::size_t c = plan_type::order[Pos];
    using pipe = at_t<c, pipelines>;
    const pipeline_event event{pipeline_name_v<pipe>, Pos + 1, plan_type::count};
    if (store_.finished(event)) {
      ++figures_.skipped;
      ordo::detail::notify_pipeline_skipped(observer_, event);
      evict(Pos);
      return;
    }
    ordo::detail::notify_pipeline_start(observer_, event);
    {
      auto model = materialize<c, plan_type::lengths[c], pipe>(Pos);
      sink(boost::hana::type_c<pipe>, model.get());
    }
    ++figures_.pipelines;
    evict(Pos);
    ordo::detail::notify_pipeline_end(observer_, event);
  }

  // What an earlier run left: the pipelines it finished and the models its store holds (known
  // when the store can say, `bool has(const prefix_key&)`), so that the stage numbers this run
  // prints count against what it will compute.
  template <std::size_t... Pos, std::size_t... P>
  typename plan_type::start_state start_state(std::index_sequence<Pos...>, std::index_sequence<P...>) {
    typename plan_type::start_state s;
    ((s.finished[Pos] = store_.finished(
          pipeline_event{pipeline_name_v<at_t<plan_type::order[Pos], pipelines>>, Pos + 1, plan_type::count})),
     ...);
    if constexpr (requires { store_.has(key<0>()); }) {
      ((s.stored[P] = store_.has(key<P>())), ...);
      s.store_keeps = true;
    }
    s.store_trained_outputs = options_.store_trained_outputs;
    return s;
  }

  template <std::size_t P>
  static prefix_key key() {
    return {P, pipeline_name_v<ordo::meta::rebind_t<prefix_stages<P>, Pipeline>>};
  }

  // The model of pipeline C after its first D stages.
  template <std::size_t C, std::size_t D, class Pipe>
  auto materialize(std::size_t position) {
    if constexpr (D == 0) {
      return model_ref<Model>(&base_);
    } else {
      constexpr std::size_t p = table.index[C][D];
      using result_model = prefix_model<p>;
      auto& slot = std::get<p>(cache_);
      if (slot) return model_ref<result_model>(&*slot);
      if (auto stored = store_.template load<result_model>(key<p>())) {
        ++figures_.loaded;
        if constexpr (requires { observer_.on_stage_loaded(std::string_view{}); })
          observer_.on_stage_loaded(key<p>().name);  // read back from an earlier run, not computed
        return keep<p>(position, std::move(*stored), /*offer_to_store=*/false);
      }

      using S = at_t<D - 1, pipeline_stages_t<Pipe>>;
      stage_event event{pipeline_name_v<Pipe>,
                        pipeline_name_v<ordo::meta::rebind_t<prefix_stages<p>, Pipeline>>,
                        S::symbol,
                        D,
                        plan_type::lengths[C],
                        S::trains,
                        0,
                        planned_,
                        {},
                        0,
                        planned_training_};
      result_model next = [&] {
        auto input = materialize<C, D - 1, Pipe>(position);
        event.sequence = ++figures_.applications;
        if (S::trains) ++figures_.training_applications;
        event.training_sequence = figures_.training_applications;
        return ordo::detail::observed(observer_, event, [&] { return apply_stage(S{}, input.get(), context_); });
      }();  // the input, if owned, is released here
      auto kept = keep<p>(position, std::move(next), /*offer_to_store=*/true, S::trains);
      if constexpr (D > 1) {
        // The stored input of a stored output: needed no more unless held or used later.
        constexpr std::size_t parent = table.index[C][D - 1];
        if (S::trains && options_.store_trained_outputs && !std::get<parent>(cache_) &&
            table.last_use[parent] <= position)
          store_.drop(key<parent>());
      }
      return kept;
    }
  }

  // Caches the model of prefix P when a later pipeline needs it and there is room (offering it
  // to the store then), else hands it over (offering it to the store when it comes from a stage
  // that trains and options::store_trained_outputs asks for that).
  template <std::size_t P, class M>
  model_ref<M> keep(std::size_t position, M&& model, bool offer_to_store, bool trained = false) {
    auto& slot = std::get<P>(cache_);
    if (table.last_use[P] > position && make_room(P)) {
      slot.emplace(std::move(model));
      ++held_;
      cached_[P] = true;
      if (held_ > figures_.peak_cached) figures_.peak_cached = held_;
      if (offer_to_store) store_.save(key<P>(), *slot);
      return model_ref<M>(&*slot);
    }
    if (offer_to_store && trained && options_.store_trained_outputs) store_.save(key<P>(), model);
    return model_ref<M>(std::move(model));
  }

  // Whether node p may be cached: the cache has room, or a held model gives way to it
  // (plan::room_for: the schedule's rule), dropped here.
  bool make_room(std::size_t p) {
    if (held_ < options_.max_cached_models) return true;
    const std::size_t victim = plan_type::room_for(p, cached_);
    if (victim == plan_type::no_room) return false;
    drop_where([victim](std::size_t i) { return i == victim; }, std::make_index_sequence<table.size>{});
    return true;
  }

  // Nodes whose last use is `position`: out of the cache and the store.
  void evict(std::size_t position) {
    drop_where([position](std::size_t i) { return table.last_use[i] == position; },
               std::make_index_sequence<table.size>{});
  }

  template <class Which, std::size_t... P>
  void drop_where(Which which, std::index_sequence<P...>) {
    auto drop = [&]<std::size_t I>(std::integral_constant<std::size_t, I>) {
      if (!which(I)) return;
      auto& slot = std::get<I>(cache_);
      if (slot) {
        slot.reset();
        --held_;
        cached_[I] = false;
      }
      store_.drop(key<I>());
    };
    (drop(std::integral_constant<std::size_t, P>{}), ...);
    (void)drop;  // a set of empty pipelines has no prefix to drop
  }

  const Model& base_;
  Context& context_;
  Observer& observer_;
  Store& store_;
  options options_;
  cache_type cache_{};
  typename plan_type::cache_flags cached_{};  // which slots of cache_ hold a model
  std::size_t held_ = 0;
  std::size_t planned_ = 0, planned_training_ = 0;
  run_figures figures_{};
};

template <class Pipelines>
auto to_type_list(const Pipelines& pipelines) {
  return boost::hana::unpack(
      pipelines, [](auto... t) { return ordo::meta::type_identity<type_list<typename decltype(t)::type...>>{}; });
}

}  // namespace detail

/// Runs every pipeline of `pipelines` (a hana tuple of hana::type<Pipeline<...>>, e.g. from
/// ordo::paper_configurations) on `base`, calling sink(hana::type<Pipe>{}, const Result&) once
/// per pipeline in plan order, except those `store` says an earlier run finished. Returns the
/// measured figures.
template <class Pipelines, class Model, class Context, class Sink, class Observer, class Store>
run_figures execute(const Pipelines& pipelines, const Model& base, Context& context, Sink&& sink, options opts,
                    Observer& observer, Store& store) {
  using list = typename decltype(detail::to_type_list(pipelines))::type;
  static_assert(!plan<list>::has_duplicates, "ordo::study::execute: the same pipeline appears twice in the set");
  detail::trie_runner<list, Model, Context, Observer, Store> runner(base, context, observer, store, opts);
  return runner.run(sink);
}

template <class Pipelines, class Model, class Context, class Sink, class Observer>
run_figures execute(const Pipelines& pipelines, const Model& base, Context& context, Sink&& sink, options opts,
                    Observer& observer) {
  no_store none;
  return execute(pipelines, base, context, sink, opts, observer, none);
}

template <class Pipelines, class Model, class Context, class Sink>
run_figures execute(const Pipelines& pipelines, const Model& base, Context& context, Sink&& sink, options opts = {}) {
  ordo::detail::no_observer none;
  return execute(pipelines, base, context, sink, opts, none);
}

/// The plan of a hana tuple of pipelines (see plan.hpp), e.g.
/// decltype(ordo::study::plan_of(ordo::paper_configurations<P, KD, Q>()))::schedule().
template <class Pipelines>
constexpr auto plan_of(const Pipelines& pipelines) {
  return plan<typename decltype(detail::to_type_list(pipelines))::type>{};
}

}  // namespace ordo::study

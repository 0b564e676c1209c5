// ordo/study/plan.hpp — how the study executor shares work between pipelines, decided at
// compile time from the pipeline types alone.
//
// The pipelines form a trie on their stage sequences: Pipeline<P, KD, Q> and Pipeline<P, Q, D,
// KD, Q> share the node "P". The executor visits the pipelines in the trie's depth-first
// pre-order (children in the order in which the given list first reaches them), computes each
// node at most once while the cache bound allows it, and keeps a node's model only while a later
// pipeline still needs it. ordo::study::plan<Pipelines...> exposes the figures of that schedule
// (stage applications with and without sharing, for a given cache bound) so that tests and
// reports can state them before anything runs.
#pragma once

#include <algorithm>    // std::max
#include <array>        // std::array
#include <cstddef>      // std::size_t
#include <limits>       // std::numeric_limits
#include <type_traits>  // std::is_same_v

#include <ordo/pipeline/type_list.hpp>  // type_list, contains_v
#include <ordo/pipeline/pipeline.hpp>   // Pipeline, pipeline_traits

namespace ordo::study {

/// Unlimited cache: every shared prefix is computed once.
inline constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

/// Figures of a schedule (planned at compile time, or measured by the executor).
struct schedule_figures {
  std::size_t applications = 0;           ///< stage applications
  std::size_t training_applications = 0;  ///< of which stages that train (P, KD)
  std::size_t peak_cached = 0;            ///< most intermediate models held at once
  friend constexpr bool operator==(const schedule_figures&, const schedule_figures&) = default;
};

namespace detail {
using ordo::meta::type_list;

template <class Out, class... T>
struct unique_types;
template <class... Out>
struct unique_types<type_list<Out...>> {
  using type = type_list<Out...>;
};
template <class... Out, class T, class... Rest>
struct unique_types<type_list<Out...>, T, Rest...> {
  using type = typename unique_types<
      std::conditional_t<ordo::meta::contains_v<T, Out...>, type_list<Out...>, type_list<Out..., T>>, Rest...>::type;
};

template <class List>
struct unique_of;
template <class... T>
struct unique_of<type_list<T...>> {
  using type = typename unique_types<type_list<>, T...>::type;
};

template <class... Lists>
struct all_stages;
template <>
struct all_stages<> {
  using type = type_list<>;
};
template <class... A, class... Rest>
struct all_stages<type_list<A...>, Rest...> {
  using type = ordo::meta::concat_t<type_list<A...>, typename all_stages<Rest...>::type>;
};

template <class T, class... U>
constexpr std::size_t index_of(type_list<U...>) {
  constexpr bool same[] = {std::is_same_v<T, U>..., false};
  for (std::size_t i = 0; i < sizeof...(U); ++i)
    if (same[i]) return i;
  return sizeof...(U);
}

template <class S>
constexpr bool trains() {
  if constexpr (ordo::stage<S>) {
    return S::trains;
  } else {
    return false;
  }
}

}  // namespace detail

template <class... Pipelines>
struct plan {
  static constexpr std::size_t count = sizeof...(Pipelines);
  static constexpr std::size_t max_length = std::max({std::size_t{1}, pipeline_traits<Pipelines>::size...});
  static constexpr std::size_t max_prefixes = count * max_length;

 private:
  // The distinct stage types, in order of first appearance.
  using universe = typename detail::unique_of<typename detail::all_stages<pipeline_stages_t<Pipelines>...>::type>::type;

  template <class List>
  struct ids_of;
  template <class... S>
  struct ids_of<ordo::meta::type_list<S...>> {
    static constexpr std::array<std::size_t, max_length> value = [] {
      std::array<std::size_t, max_length> out{};
      std::size_t i = 0;
      ((out[i++] = detail::index_of<S>(universe{})), ...);
      return out;
    }();
  };

  template <class List>
  struct trains_of;
  template <class... S>
  struct trains_of<ordo::meta::type_list<S...>> {
    static constexpr std::array<bool, sizeof...(S) + 1> value{detail::trains<S>()..., false};
  };

 public:
  static constexpr std::array<std::size_t, count> lengths{pipeline_traits<Pipelines>::size...};
  /// Stage ids (indices into the distinct stage types, in order of first appearance).
  static constexpr std::array<std::array<std::size_t, max_length>, count> ids{
      ids_of<pipeline_stages_t<Pipelines>>::value...};
  static constexpr auto stage_trains = trains_of<universe>::value;

  /// Same stages at depths 1..d?
  static constexpr bool same_prefix(std::size_t a, std::size_t b, std::size_t d) {
    if (lengths[a] < d || lengths[b] < d) return false;
    for (std::size_t i = 0; i < d; ++i)
      if (ids[a][i] != ids[b][i]) return false;
    return true;
  }

  /// The first pipeline (in the given order) that reaches the node of `c` at depth d.
  static constexpr std::size_t rank(std::size_t c, std::size_t d) {
    for (std::size_t i = 0; i < count; ++i)
      if (same_prefix(i, c, d)) return i;
    return count;
  }

  static constexpr bool comes_before(std::size_t a, std::size_t b) {
    const std::size_t common = std::min(lengths[a], lengths[b]);
    for (std::size_t i = 0; i < common; ++i) {
      if (ids[a][i] != ids[b][i]) return rank(a, i + 1) < rank(b, i + 1);
    }
    return lengths[a] < lengths[b] || (lengths[a] == lengths[b] && a < b);
  }

  /// The pipelines' indices in execution order: the trie's depth-first pre-order.
  static constexpr std::array<std::size_t, count> order = [] {
    std::array<std::size_t, count> out{};
    for (std::size_t i = 0; i < count; ++i) out[i] = i;
    for (std::size_t i = 1; i < count; ++i)  // insertion sort: stable, constexpr, n is small
      for (std::size_t j = i; j > 0 && comes_before(out[j], out[j - 1]); --j) {
        const std::size_t t = out[j];
        out[j] = out[j - 1];
        out[j - 1] = t;
      }
    return out;
  }();

  static constexpr bool has_duplicates = [] {
    for (std::size_t a = 0; a < count; ++a)
      for (std::size_t b = a + 1; b < count; ++b)
        if (lengths[a] == lengths[b] && same_prefix(a, b, lengths[a])) return true;
    return false;
  }();

  struct prefix_table {
    std::size_t size = 0;
    std::array<std::size_t, max_prefixes + 1> config{};  // a pipeline that has this prefix
    std::array<std::size_t, max_prefixes + 1> depth{};
    std::array<std::array<std::size_t, max_length + 1>, count> index{};  // [pipeline][depth]
    std::array<std::size_t, max_prefixes + 1> last_use{};                // last position in `order` using it
  };

  /// Every distinct non-empty prefix (trie node), numbered.
  static constexpr prefix_table prefixes = [] {
    prefix_table t{};
    for (std::size_t c = 0; c < count; ++c) {
      for (std::size_t d = 1; d <= lengths[c]; ++d) {
        std::size_t found = t.size;
        for (std::size_t p = 0; p < t.size; ++p)
          if (t.depth[p] == d && same_prefix(t.config[p], c, d)) found = p;
        if (found == t.size) {
          t.config[t.size] = c;
          t.depth[t.size] = d;
          ++t.size;
        }
        t.index[c][d] = found;
      }
    }
    for (std::size_t pos = 0; pos < count; ++pos) {
      const std::size_t c = order[pos];
      for (std::size_t d = 1; d <= lengths[c]; ++d) t.last_use[t.index[c][d]] = pos;
    }
    return t;
  }();

  /// Which trie nodes are held in the cache, by prefixes' numbering.
  using cache_flags = std::array<bool, max_prefixes + 1>;
  /// room_for's answer when no held model gives way.
  static constexpr std::size_t no_room = max_prefixes + 1;

  /// Whether computing node p again, from its deepest ancestor held in `cached` (else from the
  /// base model), would apply a stage that trains.
  static constexpr bool recompute_trains(std::size_t p, const cache_flags& cached) {
    const std::size_t c = prefixes.config[p];
    for (std::size_t d = prefixes.depth[p]; d > 0; --d) {
      if (stage_trains[ids[c][d - 1]]) return true;
      if (d > 1 && cached[prefixes.index[c][d - 1]]) return false;
    }
    return false;
  }

  /// With the cache full, the held node that gives way to node p: one whose recomputation
  /// trains nothing (a Q or D after a held model or the base), when p's would train; of those,
  /// the one whose last use comes latest. no_room when none does (p is then not cached).
  static constexpr std::size_t room_for(std::size_t p, const cache_flags& cached) {
    if (!recompute_trains(p, cached)) return no_room;
    std::size_t victim = no_room;
    for (std::size_t q = 0; q < prefixes.size; ++q)
      if (cached[q] && !recompute_trains(q, cached) &&
          (victim == no_room || prefixes.last_use[q] >= prefixes.last_use[victim]))
        victim = q;
    return victim;
  }

  /// Stage applications when each pipeline runs on its own.
  static constexpr schedule_figures unshared = [] {
    schedule_figures f{};
    for (std::size_t c = 0; c < count; ++c)
      for (std::size_t d = 0; d < lengths[c]; ++d) {
        ++f.applications;
        if (stage_trains[ids[c][d]]) ++f.training_applications;
      }
    return f;
  }();

  /// Where a run starts when an earlier run of the same plan was stopped: the pipelines (by
  /// position in `order`) it finished, the prefixes (trie nodes) its store holds, and how the
  /// store behaves (whether it gives back what it is given, and the executor's
  /// options::store_trained_outputs). The default is a fresh run without a store.
  struct start_state {
    std::array<bool, count> finished{};
    std::array<bool, max_prefixes + 1> stored{};
    bool store_keeps = false;
    bool store_trained_outputs = false;
  };

  /// The executor's schedule with at most `bound` intermediate models cached at once, from
  /// `start`; the executor's measured figures equal these. A node is cached when a later
  /// pipeline needs it and there is room, or when its recomputation would train and a held node
  /// whose recomputation would not gives way (room_for): a full cache keeps trained models
  /// rather than quantized copies that are quick to make again.
  static constexpr schedule_figures schedule(std::size_t bound = unbounded, const start_state& start = {}) {
    schedule_figures f{};
    cache_flags cached{};
    auto stored = start.stored;
    std::size_t held = 0;
    const auto cache = [&](std::size_t p, std::size_t pos) {
      if (prefixes.last_use[p] <= pos) return false;
      if (held >= bound) {
        const std::size_t victim = room_for(p, cached);
        if (victim == no_room) return false;
        cached[victim] = stored[victim] = false;  // the executor drops it from the store too
        --held;
      }
      cached[p] = true;
      f.peak_cached = std::max(f.peak_cached, ++held);
      return true;
    };
    for (std::size_t pos = 0; pos < count; ++pos) {
      const std::size_t c = order[pos];
      if (!start.finished[pos]) {
        // The deepest prefix held in the cache or in the store; one read from the store is
        // cached when a later pipeline needs it.
        std::size_t from = lengths[c];
        while (from > 0 && !cached[prefixes.index[c][from]] && !stored[prefixes.index[c][from]]) --from;
        if (from > 0 && !cached[prefixes.index[c][from]]) cache(prefixes.index[c][from], pos);
        for (std::size_t d = from + 1; d <= lengths[c]; ++d) {
          const bool trains = stage_trains[ids[c][d - 1]];
          ++f.applications;
          if (trains) ++f.training_applications;
          const std::size_t p = prefixes.index[c][d];
          if (cache(p, pos) || (trains && start.store_trained_outputs)) stored[p] = start.store_keeps;
          if (d > 1 && trains && start.store_trained_outputs) {
            const std::size_t parent = prefixes.index[c][d - 1];
            if (!cached[parent] && prefixes.last_use[parent] <= pos) stored[parent] = false;
          }
        }
      }
      for (std::size_t p = 0; p < prefixes.size; ++p)
        if (prefixes.last_use[p] == pos) {
          if (cached[p]) --held;
          cached[p] = stored[p] = false;
        }
    }
    return f;
  }
};

template <class... Pipelines>
struct plan<ordo::meta::type_list<Pipelines...>> : plan<Pipelines...> {};

}  // namespace ordo::study

// ordo/pipeline/orderings.hpp — many pipelines at once, as Boost.Hana tuples of hana::type.
//
//   ordo::permutations<P, KD, Q>()        every order of the stages, valid or not (Hana does
//                                         not promise an order: compare as sets)
//   ordo::paper_orderings<P, KD, Q>()     the paper's six three-stage pipelines: a Q that is not
//                                         last becomes Q, Dequantize and a final Q is appended
//                                         ("Q-P-KD" is Q-D-P-KD-Q); sorted by name
//   ordo::paper_configurations<P, KD, Q>()  the paper's ten: base, P, KD, Q and the six
//   ordo::two_stage_orderings<P, KD, Q>()   the six orders of two of the three stages, in the
//                                         paper's reading ("Q-KD" is Q-D-KD-Q), sorted by name
//   ordo::every_configuration<P, KD, Q>()   every order of every subset of the three: the paper's
//                                         ten, then the six two-stage orders (sixteen)
//   ordo::for_each_pipeline(pipelines, f)   f(hana::type<Pipeline<...>>{}) for each
//
// Each element is a hana::type<ordo::Pipeline<...>>; nothing here instantiates a Pipeline, so
// invalid ones can be listed and tested with ordo::pipeline_is_valid_v.
// Example: examples/orderings.cpp.
#pragma once

#include <string_view>  // std::string_view
#include <type_traits>  // std::conditional_t

#include <boost/hana/concat.hpp>        // hana::concat
#include <boost/hana/for_each.hpp>      // hana::for_each
#include <boost/hana/permutations.hpp>  // hana::permutations
#include <boost/hana/sort.hpp>          // hana::sort
#include <boost/hana/transform.hpp>     // hana::transform
#include <boost/hana/tuple.hpp>         // hana::tuple, hana::tuple_t
#include <boost/hana/type.hpp>          // hana::type, hana::template_
#include <boost/hana/unpack.hpp>        // hana::unpack

#include <ordo/pipeline/type_list.hpp>  // type_list, concat_t, rebind_t
#include <ordo/pipeline/pipeline.hpp>   // Pipeline, pipeline_name_v
#include <ordo/pipeline/stages.hpp>     // Dequantize

namespace ordo {
namespace hana = boost::hana;

namespace detail {

// expand_quantization: the paper's reading of an order. Out collects the result; Quantizer is
// the last quantizing stage that was followed by a Dequantize (void if none).
template <class Out, class Quantizer, class... S>
struct expand_quantization;

template <class... Out, class Quantizer>
struct expand_quantization<type_list<Out...>, Quantizer> {
  static constexpr bool ends_quantized = [] {
    if constexpr (sizeof...(Out) == 0) {
      return false;
    } else {
      return quantizing_stage<at_t<sizeof...(Out) - 1, type_list<Out...>>>;
    }
  }();
  using type =
      std::conditional_t<std::is_void_v<Quantizer> || ends_quantized, Pipeline<Out...>, Pipeline<Out..., Quantizer>>;
};

template <class... Out, class Quantizer, class S, class... Rest>
struct expand_quantization<type_list<Out...>, Quantizer, S, Rest...> {
  static constexpr bool expand = quantizing_stage<S> && sizeof...(Rest) > 0;
  using type = typename std::conditional_t<expand, expand_quantization<type_list<Out..., S, Dequantize>, S, Rest...>,
                                           expand_quantization<type_list<Out..., S>, Quantizer, Rest...>>::type;
};

template <class... S>
using paper_pipeline_t = typename expand_quantization<type_list<>, void, S...>::type;

// The paper's notation of a pipeline: its chain without the Dequantize stages and without the
// re-quantization appended at the end, when it is the expansion of that shorter order.
template <class Out, class... S>
struct drop_dequantize;
template <class... Out>
struct drop_dequantize<type_list<Out...>> {
  using type = type_list<Out...>;
};
template <class... Out, class S, class... Rest>
struct drop_dequantize<type_list<Out...>, S, Rest...> {
  using type =
      typename drop_dequantize<std::conditional_t<dequantizing_stage<S>, type_list<Out...>, type_list<Out..., S>>,
                               Rest...>::type;
};

template <class P>
struct paper_notation;
template <class... S>
struct paper_notation<Pipeline<S...>> {
  using without_d = typename drop_dequantize<type_list<>, S...>::type;
  static constexpr bool had_d = without_d::size != sizeof...(S);
  using shorter = std::conditional_t<had_d && (without_d::size > 0),
                                     take_t<(had_d ? without_d::size - 1 : 0), without_d>, without_d>;
  static constexpr bool is_expansion = had_d && std::is_same_v<rebind_t<shorter, paper_pipeline_t>, Pipeline<S...>>;
  static constexpr std::string_view value =
      is_expansion ? chain_name<shorter>::value : chain_name<type_list<S...>>::value;
};

inline constexpr auto by_name = [](auto a, auto b) {
  return hana::bool_c<(pipeline_name_v<typename decltype(a)::type> < pipeline_name_v<typename decltype(b)::type>)>;
};

}  // namespace detail

/// The paper's notation: "Q-P-KD" for Pipeline<Q, D, P, KD, Q>; the plain name otherwise.
template <class P>
inline constexpr std::string_view paper_notation_v = detail::paper_notation<P>::value;

/// The paper's reading of the order S...: Pipeline<S...> when a quantizing stage comes last,
/// else each quantization followed by Dequantize, and a final re-quantization appended.
template <class... S>
using paper_pipeline_t = detail::paper_pipeline_t<S...>;

/// Every order of S..., valid or not, as a hana::tuple of hana::type<Pipeline<...>>.
template <class... S>
constexpr auto permutations() {
  return hana::transform(hana::permutations(hana::tuple_t<S...>),
                         [](auto order) { return hana::unpack(order, hana::template_<Pipeline>); });
}

/// The paper's six orderings of P, KD, Q (see the top of this file), sorted by name.
template <class P, class KD, class Q>
constexpr auto paper_orderings() {
  auto six = hana::transform(hana::permutations(hana::tuple_t<P, KD, Q>),
                             [](auto order) { return hana::unpack(order, hana::template_<paper_pipeline_t>); });
  return hana::sort(six, detail::by_name);
}

/// The paper's ten configurations: base, P, KD, Q, then the six orderings.
template <class P, class KD, class Q>
constexpr auto paper_configurations() {
  return hana::concat(hana::tuple_t<Pipeline<>, Pipeline<P>, Pipeline<KD>, Pipeline<Q>>, paper_orderings<P, KD, Q>());
}

/// The six orders of two of P, KD, Q in the paper's reading (a Q that is not last becomes Q,
/// Dequantize and a final Q is appended: "Q-P" is Q-D-P-Q), sorted by name.
template <class P, class KD, class Q>
constexpr auto two_stage_orderings() {
  auto six = hana::tuple_t<paper_pipeline_t<P, KD>, paper_pipeline_t<KD, P>, paper_pipeline_t<P, Q>,
                           paper_pipeline_t<Q, P>, paper_pipeline_t<KD, Q>, paper_pipeline_t<Q, KD>>;
  return hana::sort(six, detail::by_name);
}

/// Every order of every subset of P, KD, Q in the paper's reading: the paper's ten
/// (paper_configurations), then the six two-stage orders (two_stage_orderings).
template <class P, class KD, class Q>
constexpr auto every_configuration() {
  return hana::concat(paper_configurations<P, KD, Q>(), two_stage_orderings<P, KD, Q>());
}

/// Calls f(hana::type<Pipeline<...>>{}) for each element, in order. In f:
///   using P = typename decltype(t)::type;
template <class Pipelines, class F>
constexpr void for_each_pipeline(const Pipelines& pipelines, F&& f) {
  hana::for_each(pipelines, f);
}

}  // namespace ordo

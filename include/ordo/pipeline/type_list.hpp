// ordo/pipeline/type_list.hpp — ordo::meta, a minimal typelist: what the algebra's rules and the
// study executor's trie work on. Hana is used where users see results (tuples of hana::type);
// the rules work on this plain list so that checking a Pipeline stays cheap to compile.
#pragma once

#include <cstddef>      // std::size_t
#include <type_traits>  // std::is_same_v
#include <utility>      // std::index_sequence

namespace ordo::meta {

template <class... T>
struct type_list {
  static constexpr std::size_t size = sizeof...(T);
};

template <class T>
struct type_identity {
  using type = T;
};

// nth_t<I, T...>: the I-th type (from 0). Overload resolution on an index-tagged base picks it
// in one step instead of I recursive instantiations.
template <std::size_t I, class T>
struct indexed {
  using type = T;
};
template <class Seq, class... T>
struct indexer;
template <std::size_t... I, class... T>
struct indexer<std::index_sequence<I...>, T...> : indexed<I, T>... {};
template <std::size_t I, class T>
indexed<I, T> select_indexed(indexed<I, T>);

template <std::size_t I, class... T>
using nth_t = typename decltype(select_indexed<I>(indexer<std::index_sequence_for<T...>, T...>{}))::type;

template <std::size_t I, class List>
struct at;
template <std::size_t I, class... T>
struct at<I, type_list<T...>> {
  using type = nth_t<I, T...>;
};
template <std::size_t I, class List>
using at_t = typename at<I, List>::type;

// take_t<N, type_list<T...>>: the first N types.
template <class List, class Seq>
struct take_impl;
template <class... T, std::size_t... I>
struct take_impl<type_list<T...>, std::index_sequence<I...>> {
  using type = type_list<nth_t<I, T...>...>;
};
template <std::size_t N, class List>
using take_t = typename take_impl<List, std::make_index_sequence<N>>::type;

template <class A, class B>
struct concat;
template <class... A, class... B>
struct concat<type_list<A...>, type_list<B...>> {
  using type = type_list<A..., B...>;
};
template <class A, class B>
using concat_t = typename concat<A, B>::type;

// rebind_t<type_list<T...>, Template> = Template<T...>
template <class List, template <class...> class To>
struct rebind;
template <class... T, template <class...> class To>
struct rebind<type_list<T...>, To> {
  using type = To<T...>;
};
template <class List, template <class...> class To>
using rebind_t = typename rebind<List, To>::type;

template <class T, class... U>
inline constexpr bool contains_v = (std::is_same_v<T, U> || ...);

// A false that depends on template parameters, for static_asserts that must fire only when
// the template holding them is instantiated.
template <class...>
inline constexpr bool dependent_false = false;

}  // namespace ordo::meta

// The algebra's internals name these unqualified.
namespace ordo::detail {
using namespace ordo::meta;
}  // namespace ordo::detail

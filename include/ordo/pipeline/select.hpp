// ordo/pipeline/select.hpp — choosing a compile-time pipeline by its name at run time.
//
//   auto pipelines = ordo::paper_configurations<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>,
//                                               ordo::QuantNF4>();
//   ordo::with_pipeline("Q-P-KD", pipelines, [&](auto t) {
//     using P = typename decltype(t)::type;        // ordo::Pipeline<Q, D, P, KD, Q>
//     return P::run(model, context);
//   });
//
// A name matches a pipeline's chain ("Q-D-P-KD-Q") or its paper notation ("Q-P-KD"), ignoring
// case and surrounding spaces. Every candidate's callable must return the same type. An unknown
// name throws ordo::unknown_pipeline, whose message lists the valid names.
#pragma once

#include <cctype>       // std::tolower
#include <optional>     // std::optional
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <type_traits>  // std::invoke_result_t, std::is_void_v
#include <utility>      // std::forward
#include <vector>       // std::vector

#include <boost/hana/for_each.hpp>  // hana::for_each
#include <boost/hana/front.hpp>     // hana::front

#include <ordo/pipeline/orderings.hpp>  // paper_notation_v
#include <ordo/pipeline/pipeline.hpp>   // pipeline_name_v

namespace ordo {

/// Thrown by with_pipeline for a name that matches no candidate.
class unknown_pipeline : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

inline bool same_name(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

template <class P>
bool pipeline_matches(std::string_view name) {
  return same_name(name, pipeline_name_v<P>) || same_name(name, paper_notation_v<P>);
}

}  // namespace detail

/// The names with_pipeline accepts for `pipelines`: "KD-Q-D-P-Q (paper: KD-Q-P)", ...
template <class Pipelines>
std::vector<std::string> pipeline_names(const Pipelines& pipelines) {
  std::vector<std::string> names;
  boost::hana::for_each(pipelines, [&](auto t) {
    using P = typename decltype(t)::type;
    std::string name(pipeline_name_v<P>);
    if (paper_notation_v<P> != pipeline_name_v<P>) {
      name += " (paper: " + std::string(paper_notation_v<P>) + ")";
    }
    names.push_back(std::move(name));
  });
  return names;
}

/// Calls f(hana::type<P>{}) for the pipeline P of `pipelines` that `name` names; returns what f
/// returns. Throws ordo::unknown_pipeline when no pipeline has that name.
template <class Pipelines, class F>
auto with_pipeline(std::string_view name, const Pipelines& pipelines, F&& f) {
  using result = std::invoke_result_t<F&, decltype(boost::hana::front(pipelines))>;
  const std::string_view wanted = detail::trim(name);
  bool found = false;
  auto fail = [&] {
    std::string message = "unknown pipeline '" + std::string(name) + "'; valid names:";
    for (const auto& n : pipeline_names(pipelines)) message += " " + n + ",";
    message.back() = '.';
    throw unknown_pipeline(message);
  };
  if constexpr (std::is_void_v<result>) {
    boost::hana::for_each(pipelines, [&](auto t) {
      using P = typename decltype(t)::type;
      if (!found && detail::pipeline_matches<P>(wanted)) {
        found = true;
        f(t);
      }
    });
    if (!found) fail();
  } else {
    std::optional<result> out;
    boost::hana::for_each(pipelines, [&](auto t) {
      using P = typename decltype(t)::type;
      if (!found && detail::pipeline_matches<P>(wanted)) {
        found = true;
        out.emplace(f(t));
      }
    });
    if (!found) fail();
    return std::move(*out);
  }
}

}  // namespace ordo

// A model that records the stages applied to it, for testing the algebra and the executor
// without LibTorch. Its state follows the typestate; its `digest` depends on the order of the
// stages (not commutative), so two models are equal only if the same chain produced them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ordo/pipeline.hpp>

namespace recording {

template <class State>
struct model {
  using state = State;
  std::vector<std::string> applied;
  std::uint64_t digest = 1469598103934665603ull;
  friend bool operator==(const model&, const model&) = default;
};

struct context {
  int applications = 0;
  int training_applications = 0;
  std::vector<std::string> log;  // "P-KD" chains as applied
};

template <class Out, class In>
Out step(const In& in, context& ctx, const std::string& what, bool trains) {
  Out out;
  out.applied = in.applied;
  out.applied.push_back(what);
  out.digest = in.digest;
  for (char c : what) out.digest = (out.digest ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  out.digest = out.digest * 31 + out.applied.size();
  ++ctx.applications;
  if (trains) ++ctx.training_applications;
  std::string chain;
  for (const auto& s : out.applied) chain += (chain.empty() ? "" : "-") + s;
  ctx.log.push_back(chain);
  return out;
}

template <int P, class... Policy>
model<ordo::dense> apply(const ordo::Prune<P, Policy...>& s, const model<ordo::dense>& m, context& c) {
  return step<model<ordo::dense>>(m, c, s.describe(), true);
}
template <class T, class A>
model<ordo::dense> apply(const ordo::Distill<T, A>& s, const model<ordo::dense>& m, context& c) {
  return step<model<ordo::dense>>(m, c, s.describe(), true);
}
template <unsigned long long B, ordo::double_quant DQ>
model<ordo::nf4> apply(const ordo::QuantizeNF4<B, DQ>& s, const model<ordo::dense>& m, context& c) {
  return step<model<ordo::nf4>>(m, c, s.describe(), false);
}
inline model<ordo::dense> apply(const ordo::Dequantize& s, const model<ordo::nf4>& m, context& c) {
  return step<model<ordo::dense>>(m, c, s.describe(), false);
}

}  // namespace recording

// ordo-orderings: the paper's six orderings as compile-time pipelines.
//
// Prints each ordering in the paper's notation beside the chain ordo runs (a quantization that
// is not last is followed by Dequantize and the model is re-quantized at the end), then the
// validity of the six raw permutations of P, KD and Q under the quantization-last rule.
#include <cstdio>

#include <ordo/pipeline.hpp>

int main() {
  using P = ordo::Prune<30>;
  using KD = ordo::Distill<ordo::T4, ordo::A03>;
  using Q = ordo::QuantNF4;

  std::printf("The paper's six orderings (paper notation -> chain ordo runs):\n");
  ordo::for_each_pipeline(ordo::paper_orderings<P, KD, Q>(), [](auto t) {
    using Pipe = typename decltype(t)::type;
    std::printf("  %-8s -> %-12s %s\n", ordo::paper_notation_v<Pipe>.data(), Pipe::name().data(),
                Pipe::description().c_str());
  });

  std::printf("\nThe raw permutations of P, KD, Q under the quantization-last rule:\n");
  int valid = 0;
  ordo::for_each_pipeline(ordo::permutations<P, KD, Q>(), [&](auto t) {
    using Pipe = typename decltype(t)::type;
    constexpr bool ok = ordo::pipeline_is_valid_v<Pipe>;
    valid += ok;
    std::printf("  %-8s %s\n", ordo::pipeline_name_v<Pipe>.data(),
                ok ? "valid" : "invalid: a stage follows QuantNF4 without Dequantize");
  });
  std::printf("%d of 6 raw permutations are valid\n", valid);
}

// compare_models A B TOLERANCE: two saved dense models (Hugging Face directories) have the same
// shape (every layer's FFN width: the same neurons kept) and parameters within TOLERANCE.
// Prints the largest difference; exit status 1 when they differ. Used by compress_ranks_test.sh.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <torch/torch.h>

#include <ordo/model/dense_model.hpp>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: compare_models A B TOLERANCE\n");
    return 2;
  }
  try {
    const auto a = ordo::DenseModel::load(argv[1]), b = ordo::DenseModel::load(argv[2]);
    const double tolerance = std::stod(argv[3]);
    if (a.config().intermediate_sizes != b.config().intermediate_sizes) {
      std::printf("compare_models: the FFN widths differ\n");
      return 1;
    }
    auto pb = const_cast<ordo::model::CausalLM&>(b.lm())->named_parameters();
    double worst = 0;
    std::string where;
    std::size_t n = 0;
    for (const auto& p : const_cast<ordo::model::CausalLM&>(a.lm())->named_parameters()) {
      const auto* q = pb.find(p.key());
      if (!q || q->sizes() != p.value().sizes()) {
        std::printf("compare_models: parameter %s differs in shape or is missing\n", p.key().c_str());
        return 1;
      }
      const double d = (p.value() - *q).abs().max().item<double>();
      if (d > worst) worst = d, where = p.key();
      ++n;
    }
    std::printf("compare_models: %zu parameters, max |difference| %.3g (%s)\n", n, worst, where.c_str());
    return worst <= tolerance ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_models: %s\n", e.what());
    return 1;
  }
}

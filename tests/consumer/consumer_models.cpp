// A program outside ordo's tree on the LibTorch layers (ordo::models, through add_subdirectory):
// a tiny random decoder's forward pass, no files needed.
#include <cmath>
#include <cstdio>

#include <ordo/pipeline.hpp>
#include <ordo/model/dense_model.hpp>      // DenseModel
#include <ordo/model/quantized_model.hpp>  // QuantizedModel

int main() {
  torch::manual_seed(0);
  ordo::model::decoder_config c;  // member by member (no -Wmissing-field-initializers)
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.intermediate_sizes = {64, 48};
  ordo::model::CausalLM lm(c);
  const auto logits = lm->forward(torch::randint(0, 64, {1, 8}, torch::kLong));
  std::printf("consumer_models: logits %lld x %lld x %lld, default model file %s\n",
              static_cast<long long>(logits.size(0)), static_cast<long long>(logits.size(1)),
              static_cast<long long>(logits.size(2)), ordo::model::default_model_path().filename().string().c_str());
  return logits.size(2) == 64 && std::isfinite(logits.sum().item<double>()) ? 0 : 1;
}

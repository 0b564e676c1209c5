// ordo-compress-default: the paper's best ordering, P-KD-Q, on the embedded default model
// (SmolLM2-135M-Instruct) with tiny budgets; saved in bitsandbytes' NF4 format, loaded back,
// and compared with the model in memory. Usage: ordo-compress-default [CORPUS [OUT]]
// (defaults: data/sotu, the State of the Union corpus of `./ordo data`, and compressed-model).
// Budgets this small leave the compressed model far worse than the base; the study's budgets
// and figures are in docs/results.md (`ordo-compress` is the command-line tool for one pipeline).
#include <cstdio>
#include <memory>
#include <vector>

#include <ordo/data/corpora.hpp>          // read_sotu
#include <ordo/data/examples.hpp>         // text_examples
#include <ordo/eval/perplexity.hpp>       // perplexity
#include <ordo/model/nf4_checkpoint.hpp>  // save_nf4, load_nf4
#include <ordo/pipeline.hpp>              // Pipeline, Prune, Distill, QuantNF4
#include <ordo/stages/distill.hpp>        // apply(Distill, ...)
#include <ordo/stages/prune.hpp>          // apply(Prune, ...)
#include <ordo/stages/quantize.hpp>       // apply(QuantNF4, ...)

int main(int argc, char** argv) {
  using Best = ordo::Pipeline<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>, ordo::QuantNF4>;
  const auto base = ordo::DenseModel::load();                                    // the embedded default model
  const auto docs = ordo::data::read_sotu(argc > 1 ? argv[1] : "data/sotu", 2);  // two speeches

  ordo::Context context;  // 2 calibration and 2 training sequences of 16 tokens from the first
  const auto ex = ordo::data::text_examples({docs[0]}, base.tokenizer(), {.length = 16, .max_examples = 4});
  context.calibration = {ex[0], ex[1]};
  context.train = {ex[2], ex[3]};
  context.budget = {.calibration_samples = 2, .train_samples = 2, .sequence_length = 16, .batch_size = 2};
  context.teacher = std::make_shared<const ordo::DenseModel>(base);  // KD's teacher: the base model

  auto compressed = Best::run(base, context);  // an ordo::QuantizedModel
  const auto saved = ordo::model::save_nf4(compressed, argc > 2 ? argv[2] : "compressed-model");
  auto reloaded = ordo::model::load_nf4(saved.dir);

  const auto held_out = base.tokenizer().encode(docs[1].text);  // the second speech
  const std::vector<std::int64_t> ids(held_out.begin(), held_out.end());
  auto ppl = [&](const auto& m) {
    auto lm = m.lm();  // a handle to the model's network
    return ordo::eval::perplexity(lm, ids, {.context = 128, .stride = 128, .max_tokens = 128}).ppl;
  };
  const auto probe = torch::tensor(ex[0].ids).unsqueeze(0);
  std::printf("%s: %s\nsaved %s: %.1f MB on disk, %.1fx smaller in memory\n", Best::name().data(),
              Best::description().c_str(), saved.dir.c_str(), saved.size.file_bytes / 1048576.0,
              static_cast<double>(base.memory_bytes()) / compressed.memory_bytes());
  std::printf("perplexity on 128 held-out tokens: base %.2f, compressed %.2f, reloaded %.2f\n", ppl(base),
              ppl(compressed), ppl(reloaded));
  const bool same = compressed.logits(probe).equal(reloaded.logits(probe));
  std::printf("the reloaded model gives the same logits: %s\n", same ? "yes" : "NO");
  return same ? 0 : 1;
}

// The KD stage: loss = (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T) per scored token,
// checked against a hand computation with masks and a vocabulary cut; training on a tiny
// random decoder lowers it; invalid run-time inputs are clear errors.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../test_support.hpp"   // error_of
#include "../tiny_decoder.hpp"   // tiny_decoder

#include <cmath>
#include <filesystem>
#include <map>

#include <ordo/pipeline.hpp>
#include <ordo/stages/distill.hpp>

namespace fs = std::filesystem;

namespace {

ordo::model::CausalLM tiny_lm(std::uint64_t seed, std::int64_t vocab = 40) {
  return tiny_decoder(tiny_config(vocab, 40), seed);
}

ordo::DenseModel dense(ordo::model::CausalLM lm, std::shared_ptr<const ordo::Tokenizer> tok = nullptr) {
  return ordo::DenseModel(std::move(lm), std::move(tok), std::nullopt, "tiny");
}

std::vector<ordo::Example> sequences(int n) {
  std::vector<ordo::Example> out;
  for (int i = 0; i < n; ++i) {
    ordo::Example e;
    const int len = 6 + i % 5;
    for (int t = 0; t < len; ++t) e.ids.push_back((i * 3 + t * (1 + i % 3)) % 40);
    e.labels = e.ids;
    e.labels[0] = -100;
    if (i % 4 == 1) e.labels[2] = -100;  // some unscored targets inside
    out.push_back(e);
  }
  return out;
}

// Mean KD loss per scored token of a student on examples, with the given teacher.
double kd_mean(ordo::model::CausalLM& student, ordo::model::CausalLM& teacher, const std::vector<ordo::Example>& ex,
               double T, double alpha) {
  torch::NoGradGuard no_grad;
  auto b = ordo::data::collate(ex);
  auto terms = ordo::distill::loss_terms(student->forward(b.ids, b.attention_mask),
                                         teacher->forward(b.ids, b.attention_mask), b.labels, T, alpha);
  return terms.loss.item<double>() / static_cast<double>(terms.tokens);
}

// Whether two models hold the same parameters, bit for bit.
bool same_weights(const ordo::model::CausalLM& a, const ordo::model::CausalLM& b) {
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  return true;
}

// Two epochs of KD in batches of 4 on n short sequences, a tiny teacher, learning rate 1e-3.
ordo::Context kd_context(int n) {
  ordo::Context ctx;
  ctx.teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(2)));
  ctx.train = sequences(n);
  ctx.budget.train_samples = n;
  ctx.budget.epochs = 2;
  ctx.budget.batch_size = 4;
  ctx.budget.distill_learning_rate = 1e-3;
  return ctx;
}

}  // namespace

TEST_CASE("the KD loss equals a hand computation: masks in both terms, vocabulary cut to the shared size") {
  const double T = 2.0, alpha = 0.3;
  torch::manual_seed(0);
  auto student = torch::randn({2, 4, 5}, torch::kFloat64);  // 5 logits
  auto teacher = torch::randn({2, 4, 7}, torch::kFloat64);  // 7 logits: KL over the first 5
  // Row 0: targets at 1, 3 scored (2 not); row 1: padded after 2 tokens.
  auto labels = torch::tensor({-100, 4, -100, 2, -100, 1, -100, -100}, torch::kLong).view({2, 4});
  auto terms = ordo::distill::loss_terms(student, teacher, labels, T, alpha);

  double ce = 0, kl = 0;
  std::int64_t n = 0;
  auto S = student.accessor<double, 3>(), Q = teacher.accessor<double, 3>();
  auto L = labels.accessor<std::int64_t, 2>();
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t + 1 < 4; ++t) {
      const auto y = L[b][t + 1];
      if (y == -100) continue;
      ++n;
      double zs = 0, zsT = 0, zqT = 0;
      for (int v = 0; v < 5; ++v) zs += std::exp(S[b][t][v]);
      ce += -(S[b][t][y] - std::log(zs));  // CE over all of the student's logits
      for (int v = 0; v < 5; ++v) {
        zsT += std::exp(S[b][t][v] / T);
        zqT += std::exp(Q[b][t][v] / T);
      }
      for (int v = 0; v < 5; ++v) {
        const double pt = std::exp(Q[b][t][v] / T) / zqT, ps = std::exp(S[b][t][v] / T) / zsT;
        kl += pt * (std::log(pt) - std::log(ps));
      }
    }
  CHECK(n == 3);
  CHECK(terms.tokens == 3);
  CHECK(terms.ce.item<double>() == doctest::Approx(ce).epsilon(1e-12));
  CHECK(terms.kl.item<double>() == doctest::Approx(kl).epsilon(1e-12));
  CHECK(terms.loss.item<double>() == doctest::Approx((1 - alpha) * ce + alpha * T * T * kl).epsilon(1e-12));
  // What the masked positions hold does not matter.
  auto changed = student.clone();
  changed.index_put_({0, 1}, 100.0);  // predicts the unscored target at 2
  changed.index_put_({1, 2}, -50.0);  // predicts padding
  CHECK(ordo::distill::loss_terms(changed, teacher, labels, T, alpha).loss.item<double>() ==
        doctest::Approx(terms.loss.item<double>()).epsilon(1e-12));
  // Equal distributions: no KL; alpha = 0: plain CE.
  CHECK(ordo::distill::loss_terms(student, student, labels, T, 0.5).kl.item<double>() ==
        doctest::Approx(0).epsilon(1e-12));
  CHECK(ordo::distill::loss_terms(student, teacher, labels, T, 0.0).loss.item<double>() == doctest::Approx(ce));
}

TEST_CASE("Distill<T2, A05> lowers the KD loss; input and teacher untouched, no gradient in the teacher") {
  auto base = dense(tiny_lm(1));
  auto teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(2)));
  ordo::Context ctx;
  ctx.teacher = teacher;
  ctx.train = sequences(16);
  ctx.budget.train_samples = 16;
  ctx.budget.sequence_length = 8;
  ctx.budget.epochs = 8;
  ctx.budget.batch_size = 4;
  ctx.budget.grad_accumulation = 2;
  ctx.budget.distill_learning_rate = 1e-2;
  ctx.budget.warmup_fraction = 0.1;
  ctx.budget.max_grad_norm = 1.0;
  ctx.seed = 5;
  int reports = 0;
  ctx.progress = [&](const std::string&, double, const std::string&) { ++reports; };
  auto base_before = ordo::model::clone(base.lm());
  auto teacher_before = ordo::model::clone(teacher->lm());

  std::vector<ordo::Example> eval;
  for (const auto& e : ctx.train) eval.push_back(ordo::data::truncated(e, 8));
  const double before = kd_mean(base.lm(), teacher->lm(), eval, 2.0, 0.5);
  auto out = ordo::Pipeline<ordo::Distill<ordo::T2, ordo::A05>>::run(base, ctx);
  static_assert(std::is_same_v<decltype(out), ordo::DenseModel>);
  const double after = kd_mean(out.lm(), teacher->lm(), eval, 2.0, 0.5);
  MESSAGE("KD loss per token " << before << " -> " << after);
  CHECK(after < 0.8 * before);
  CHECK(reports >= 16);  // 16 optimizer steps and the stage's start and end

  const auto same = same_weights;
  CHECK(same(base.lm(), base_before));
  CHECK(same(teacher->lm(), teacher_before));
  for (const auto& p : teacher->lm()->parameters()) CHECK_FALSE(p.grad().defined());
  CHECK_FALSE(same(out.lm(), base_before));
}

TEST_CASE("Distill in bf16 mixed precision (Context::train_dtype): fp32 weights, the KD loss falls as in fp32") {
  auto base = dense(tiny_lm(1));
  auto teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(2)));
  ordo::Context ctx;
  ctx.teacher = teacher;
  ctx.train = sequences(16);
  ctx.budget.train_samples = 16;
  ctx.budget.sequence_length = 8;
  ctx.budget.epochs = 8;
  ctx.budget.batch_size = 4;
  ctx.budget.distill_learning_rate = 1e-2;
  ctx.seed = 5;
  std::vector<ordo::Example> eval;
  for (const auto& e : ctx.train) eval.push_back(ordo::data::truncated(e, 8));
  const double before = kd_mean(base.lm(), teacher->lm(), eval, 2.0, 0.5);
  auto fp32 = ordo::Pipeline<ordo::Distill<ordo::T2, ordo::A05>>::run(base, ctx);
  ctx.train_dtype = torch::kBFloat16;
  auto bf16 = ordo::Pipeline<ordo::Distill<ordo::T2, ordo::A05>>::run(base, ctx);
  for (const auto& p : bf16.lm()->parameters()) CHECK((p.scalar_type() == c10::ScalarType::Float));
  const double after32 = kd_mean(fp32.lm(), teacher->lm(), eval, 2.0, 0.5);
  const double after16 = kd_mean(bf16.lm(), teacher->lm(), eval, 2.0, 0.5);
  MESSAGE("KD loss per token " << before << " -> fp32 " << after32 << ", bf16 " << after16);
  CHECK(after16 < 0.8 * before);
  CHECK(std::abs(after16 - after32) < 0.1 * after32);
  CHECK(after16 != after32);  // it ran in bf16
}

TEST_CASE("Distill trains against a teacher with more logits (the shared vocabulary)") {
  auto base = dense(tiny_lm(3, 40));
  ordo::Context ctx;
  ctx.teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(4, 48)));
  ctx.train = sequences(8);
  ctx.budget.train_samples = 8;
  ctx.budget.epochs = 1;
  ctx.budget.batch_size = 4;
  ctx.budget.distill_learning_rate = 1e-3;
  auto out = ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  CHECK(out.config().vocab_size == 40);
}

TEST_CASE("invalid run-time inputs are clear errors") {
  auto base = dense(tiny_lm(1));
  const ordo::Distill<ordo::T4, ordo::A03> kd;
  ordo::Context ctx;
  ctx.train = sequences(4);
  CHECK(error_of([&] { ordo::apply_stage(kd, base, ctx); }).find("Context::teacher is not set") != std::string::npos);

  ctx.teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(2)));
  auto with = [&](auto change) {
    ordo::Context c = ctx;
    change(c);
    return error_of([&] { ordo::apply_stage(kd, base, c); });
  };
  CHECK(with([](ordo::Context& c) { c.budget.batch_size = 0; }) ==
        "ordo::Distill<T=4, alpha=0.3>: Budget::batch_size must be at least 1 (got 0)");
  CHECK(with([](ordo::Context& c) {
          c.budget.sequence_length = 1;
        }).find("Budget::sequence_length must be at least 2") != std::string::npos);
  CHECK(with([](ordo::Context& c) { c.budget.train_samples = 0; }).find("Budget::train_samples") != std::string::npos);
  CHECK(with([](ordo::Context& c) { c.budget.epochs = -1; }).find("Budget::epochs") != std::string::npos);
  CHECK(with([](ordo::Context& c) { c.budget.grad_accumulation = 0; }).find("Budget::grad_accumulation") !=
        std::string::npos);
  CHECK(with([](ordo::Context& c) { c.budget.distill_learning_rate = 0; }).find("learning rate must be positive") !=
        std::string::npos);
  CHECK(with([](ordo::Context& c) { c.budget.warmup_fraction = 1.0; }).find("Budget::warmup_fraction") !=
        std::string::npos);
  CHECK(with([](ordo::Context& c) { c.budget.max_grad_norm = -1; }).find("Budget::max_grad_norm") != std::string::npos);
  CHECK(with([](ordo::Context& c) { c.train.clear(); }) ==
        "ordo::Distill<T=4, alpha=0.3>: Context::train holds no examples to distill on");
  CHECK(with([](ordo::Context& c) {
          c.train[1].ids[3] = 45;
          c.train[1].labels[3] = 45;
        }) == "distill: train example 1 (teacher): token 3 has id 45, outside the model's vocabulary of 40");
  CHECK(with([](ordo::Context& c) {
          c.train_dtype = torch::kFloat16;
        }).find("compute_dtype must be float32 or bfloat16") != std::string::npos);

  // Mismatched tokenizers.
  auto smol = std::make_shared<const ordo::Tokenizer>(
      ordo::Tokenizer::from_file(fs::path(ORDO_TEXT_FIXTURES) / "smollm2_tokenizer.json"));
  auto qwen = std::make_shared<const ordo::Tokenizer>(
      ordo::Tokenizer::from_file(fs::path(ORDO_TEXT_FIXTURES) / "qwen2_tokenizer.json"));
  auto student = dense(tiny_lm(1), smol);
  ctx.teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(2), qwen));
  CHECK(error_of([&] { ordo::apply_stage(kd, student, ctx); }).find("the teacher's tokenizer") != std::string::npos);
  ctx.teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(2)));
  CHECK(error_of([&] {
          ordo::apply_stage(kd, student, ctx);
        }).find("only one of student and teacher has a tokenizer") != std::string::npos);
  // The same tokenizer, loaded twice: accepted (compared token by token).
  auto smol_again = std::make_shared<const ordo::Tokenizer>(
      ordo::Tokenizer::from_file(fs::path(ORDO_TEXT_FIXTURES) / "smollm2_tokenizer.json"));
  ctx.teacher = std::make_shared<ordo::DenseModel>(dense(tiny_lm(2), smol_again));
  ctx.budget.epochs = 1;
  CHECK_NOTHROW(ordo::apply_stage(kd, student, ctx));
}

namespace {

// The unfused loss and the fused one on the same batch: loss, CE, KL, and every gradient.
void check_fused_equals_unfused(bool tied, std::int64_t teacher_vocab, std::int64_t chunk) {
  auto config = tiny_config(40, 40);
  config.tie_word_embeddings = tied;
  auto student = tiny_decoder(config, 11, 0.5);  // far from uniform: large logits, peaked softmaxes
  auto tc = tiny_config(teacher_vocab, 40);
  auto teacher = tiny_decoder(tc, 12, 0.5);
  auto b = ordo::data::collate(sequences(6));
  torch::Tensor target;
  {
    torch::NoGradGuard no_grad;
    target = teacher->forward(b.ids, b.attention_mask);
  }
  const double T = 4.0, alpha = 0.3;
  auto reference = ordo::distill::loss_terms(student->forward(b.ids, b.attention_mask), target, b.labels, T, alpha);
  reference.loss.backward();
  std::map<std::string, torch::Tensor> grads;
  for (const auto& p : student->named_parameters()) {
    grads[p.key()] = p.value().grad().clone();
    p.value().mutable_grad() = torch::Tensor();
  }
  const auto h = student->hidden(b.ids, b.attention_mask);
  const auto scored = b.labels.slice(1, 1) != ordo::data::ignore_index;
  auto fused = ordo::train::chunked_kd_loss(h.slice(1, 0, h.size(1) - 1).index({scored}), student->head_weight(),
                                            target.slice(1, 0, target.size(1) - 1).index({scored}),
                                            b.labels.slice(1, 1).index({scored}), T, alpha, chunk);
  fused.loss.backward();
  const auto rel = [](const torch::Tensor& a, const torch::Tensor& r) {
    return (a - r).abs().max().item<double>() / std::max(1e-30, r.abs().max().item<double>());
  };
  CHECK(rel(fused.loss, reference.loss) < 1e-5);
  CHECK(rel(fused.ce, reference.ce) < 1e-5);
  CHECK(rel(fused.kl, reference.kl) < 1e-5);
  double worst = 0;
  for (const auto& p : student->named_parameters()) {
    REQUIRE(p.value().grad().defined());
    worst = std::max(worst, rel(p.value().grad(), grads[p.key()]));
  }
  MESSAGE("tied " << tied << ", teacher vocab " << teacher_vocab << ", chunk " << chunk << ": loss "
                  << reference.loss.item<double>() << ", worst gradient difference (relative) " << worst);
  CHECK(worst < 1e-4);
}

}  // namespace

TEST_CASE("the fused, chunked vocabulary loss gives the unfused loss and its gradients") {
  check_fused_equals_unfused(true, 40, 7);     // tied head, chunks that do not divide the rows
  check_fused_equals_unfused(false, 48, 1000);  // separate head, one chunk, a larger teacher vocabulary
  check_fused_equals_unfused(false, 33, 1);     // a smaller teacher vocabulary: KL over its 33 entries
}

TEST_CASE("Distill with Context::vocab_loss_chunk trains as the unfused loss does; what it cannot do is an error") {
  auto base = dense(tiny_lm(1));
  auto ctx = kd_context(8);
  auto unfused = ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  ctx.vocab_loss_chunk = 5;
  auto fused = ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  double moved = 0, apart = 0;
  auto pu = unfused.lm()->named_parameters();
  auto p0 = base.lm()->named_parameters();
  for (const auto& p : fused.lm()->named_parameters()) {
    moved = std::max(moved, (pu[p.key()] - p0[p.key()]).abs().max().item<double>());
    apart = std::max(apart, (p.value() - pu[p.key()]).abs().max().item<double>());
  }
  MESSAGE("weights moved up to " << moved << "; fused and unfused apart by up to " << apart);
  CHECK(moved > 1e-4);
  CHECK(apart < 1e-2 * moved);  // AdamW divides by sqrt(v): last-digit gradient differences grow where v is tiny
  ctx.train_dtype = torch::kBFloat16;
  CHECK(error_of([&] { ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx); }) ==
        "ordo::Distill<T=4, alpha=0.3>: the fused vocabulary loss (Context::vocab_loss_chunk) trains in float32 only");
  ctx.train_dtype = torch::kFloat32;
  ctx.vocab_loss_chunk = -1;
  CHECK(error_of([&] { ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx); }) ==
        "ordo::Distill<T=4, alpha=0.3>: Context::vocab_loss_chunk must be >= 0");
}

TEST_CASE("Context::teacher_logits: later KD stages on the same batches take the kept logits and train the same student") {
  auto base = dense(tiny_lm(1));
  auto ctx = kd_context(12);
  ctx.seed = 3;
  auto equal = [](const ordo::DenseModel& a, const ordo::DenseModel& b) { return same_weights(a.lm(), b.lm()); };
  const ordo::Distill<ordo::T4, ordo::A03> kd;
  auto plain = ordo::apply_stage(kd, base, ctx);  // the teacher runs on every batch

  ctx.teacher_logits = std::make_shared<ordo::model::logits_cache>(std::int64_t{1} << 30);
  auto first = ordo::apply_stage(kd, base, ctx);
  const auto batches = ctx.teacher_logits->misses();  // 2 epochs x 3 batches, each epoch its own order
  CHECK(batches == 6);
  CHECK(ctx.teacher_logits->hits() == 0);
  CHECK(ctx.teacher_logits->bytes() > 0);
  auto second = ordo::apply_stage(kd, base, ctx);
  CHECK(ctx.teacher_logits->hits() == batches);  // the same batches: all kept
  CHECK(ctx.teacher_logits->misses() == batches);
  CHECK(equal(first, plain));
  CHECK(equal(second, plain));
  CHECK_FALSE(equal(second, base));

  // Room for one batch's logits: the first batch is kept, the others are computed every time.
  const auto one = ctx.teacher_logits->bytes() / batches;
  ctx.teacher_logits = std::make_shared<ordo::model::logits_cache>(one);
  ordo::apply_stage(kd, base, ctx);
  auto third = ordo::apply_stage(kd, base, ctx);
  CHECK(ctx.teacher_logits->bytes() <= one);
  CHECK(ctx.teacher_logits->hits() >= 1);
  CHECK(ctx.teacher_logits->hits() < batches);
  CHECK(equal(third, plain));
}

TEST_CASE("logits_cache: a hit needs the same model and the same inputs; what it gives is the forward pass") {
  auto a = tiny_lm(4), b = tiny_lm(5);
  ordo::model::logits_cache cache(std::int64_t{1} << 20);
  const auto ids = torch::tensor({1, 2, 3, 4, 5, 6}, torch::kLong).view({2, 3});
  const auto mask = torch::tensor({1, 1, 1, 1, 1, 0}, torch::kLong).view({2, 3});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = a->forward(ids, mask);
  }
  CHECK(torch::equal(cache.forward(a, ids, mask), expected));
  CHECK(torch::equal(cache.forward(a, ids.clone(), mask.clone()), expected));  // equal contents: a hit
  CHECK(cache.hits() == 1);
  cache.forward(b, ids, mask);             // another model
  cache.forward(a, ids, {});               // no mask
  cache.forward(a, ids.flip({1}), mask);   // other ids
  cache.forward(a, ids.view({3, 2}), {});  // the same bytes in another shape
  CHECK(cache.hits() == 1);
  CHECK(cache.misses() == 5);
  CHECK_FALSE(cache.forward(a, ids, mask).requires_grad());
  // what is kept does not follow the caller's tensors: changed in place after the call, the
  // original contents still find their logits
  auto reused = torch::tensor({9, 8, 7}, torch::kLong).view({1, 3});
  const auto kept = cache.forward(a, reused, {});
  reused.fill_(1);
  const auto hits = cache.hits();
  CHECK(torch::equal(cache.forward(a, torch::tensor({9, 8, 7}, torch::kLong).view({1, 3}), {}), kept));
  CHECK(cache.hits() == hits + 1);

  ordo::model::logits_cache none(0);  // keeps nothing
  none.forward(a, ids, mask);
  none.forward(a, ids, mask);
  CHECK(none.hits() == 0);
  CHECK(none.bytes() == 0);
  CHECK(error_of([] { ordo::model::logits_cache bad(-1); }) ==
        "ordo::model::logits_cache: the capacity must not be negative");
}

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

// One backward pass of the KD loss of `student` on `b` against the teacher's logits `target`:
// the loss terms and every parameter's gradient (the model's gradients are cleared after).
// chunk 0: the unfused loss (distill::loss_terms); else the fused one, chunk rows at a time.
// dtype bfloat16: under autocast, as training does (Context::train_dtype).
struct kd_pass {
  torch::Tensor loss, ce, kl;
  std::map<std::string, torch::Tensor> grads;
};
kd_pass kd_backward(ordo::model::CausalLM& student, const ordo::data::Batch& b, const torch::Tensor& target,
                    std::int64_t chunk, torch::ScalarType dtype = torch::kFloat32,
                    std::int64_t grad_w_bytes = std::int64_t{256} << 20) {
  const double T = 4.0, alpha = 0.3;
  kd_pass out;
  {
    ordo::train::AutocastGuard mixed(dtype);
    if (chunk == 0) {
      auto t = ordo::distill::loss_terms(student->forward(b.ids, b.attention_mask), target, b.labels, T, alpha);
      out.loss = t.loss, out.ce = t.ce, out.kl = t.kl;
    } else {
      const auto h = student->hidden(b.ids, b.attention_mask);
      const auto scored = b.labels.slice(1, 1) != ordo::data::ignore_index;
      auto t = ordo::train::chunked_kd_loss(h.slice(1, 0, h.size(1) - 1).index({scored}), student->head_weight(),
                                            target.slice(1, 0, target.size(1) - 1).index({scored}),
                                            b.labels.slice(1, 1).index({scored}), T, alpha, chunk, dtype,
                                            grad_w_bytes);
      out.loss = t.loss, out.ce = t.ce, out.kl = t.kl;
    }
  }
  out.loss.backward();
  for (const auto& p : student->named_parameters()) {
    REQUIRE(p.value().grad().defined());
    out.grads[p.key()] = p.value().grad().clone();
    p.value().mutable_grad() = torch::Tensor();
  }
  return out;
}

double relative(const torch::Tensor& a, const torch::Tensor& r) {
  return (a - r).abs().max().item<double>() / std::max(1e-30, r.abs().max().item<double>());
}

// The largest relative difference of any parameter's gradient.
double worst_gradient(const kd_pass& a, const kd_pass& r) {
  double worst = 0;
  for (const auto& [name, g] : r.grads) worst = std::max(worst, relative(a.grads.at(name), g));
  return worst;
}

torch::Tensor teacher_logits(ordo::model::CausalLM& teacher, const ordo::data::Batch& b,
                             torch::ScalarType dtype = torch::kFloat32) {
  torch::NoGradGuard no_grad;
  ordo::train::AutocastGuard mixed(dtype);
  return teacher->forward(b.ids, b.attention_mask);
}

// The unfused loss and the fused one on the same batch: loss, CE, KL, and every gradient.
void check_fused_equals_unfused(bool tied, std::int64_t teacher_vocab, std::int64_t chunk) {
  auto config = tiny_config(40, 40);
  config.tie_word_embeddings = tied;
  auto student = tiny_decoder(config, 11, 0.5);  // far from uniform: large logits, peaked softmaxes
  auto teacher = tiny_decoder(tiny_config(teacher_vocab, 40), 12, 0.5);
  auto b = ordo::data::collate(sequences(6));
  const auto target = teacher_logits(teacher, b);
  const auto reference = kd_backward(student, b, target, 0);
  const auto fused = kd_backward(student, b, target, chunk);
  CHECK(relative(fused.loss, reference.loss) < 1e-5);
  CHECK(relative(fused.ce, reference.ce) < 1e-5);
  CHECK(relative(fused.kl, reference.kl) < 1e-5);
  const double worst = worst_gradient(fused, reference);
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

TEST_CASE("the fused loss's gradient by rows (the CPU's way) and by whole chunks (CUDA's way) agree") {
  torch::manual_seed(5);
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16})
    for (const std::int64_t Vq : {40, 33, 48}) {  // the teacher's vocabulary: same, smaller, larger
      const auto s = (torch::randn({6, 40}) * 4).to(dtype), q = torch::randn({6, Vq}) * 4;
      const auto y = torch::randint(0, 40, {6}, torch::kLong);
      const auto Vk = std::min<std::int64_t>(40, Vq);
      double ce_rows = 0, kl_rows = 0, ce_chunk = 0, kl_chunk = 0;
      auto g_rows = torch::empty({6, 40}, dtype), g_chunk = torch::empty({6, 40}, dtype);
      ordo::train::detail::logit_gradients(s, q, y, Vk, 4.0, 0.3, g_rows, ce_rows, kl_rows, true);
      ordo::train::detail::logit_gradients(s, q, y, Vk, 4.0, 0.3, g_chunk, ce_chunk, kl_chunk, false);
      CHECK(torch::equal(g_rows, g_chunk));
      CHECK(ce_rows == doctest::Approx(ce_chunk).epsilon(1e-6));
      CHECK(kl_rows == doctest::Approx(kl_chunk).epsilon(1e-6));
      // g against autograd's gradient of the same terms (fp32 on the same logits)
      auto sf = s.to(torch::kFloat32).requires_grad_(true);
      auto log_p = torch::log_softmax(sf, 1);
      auto ce = -log_p.gather(1, y.unsqueeze(1)).sum();
      auto log_ps = torch::log_softmax(sf.slice(1, 0, Vk) / 4.0, 1);
      auto log_pt = torch::log_softmax(q.slice(1, 0, Vk) / 4.0, 1);
      auto kl = (log_pt.exp() * (log_pt - log_ps)).sum();
      (ce * 0.7 + kl * (0.3 * 16)).backward();
      CHECK(ce.item<double>() == doctest::Approx(ce_rows).epsilon(1e-5));
      CHECK(kl.item<double>() == doctest::Approx(kl_rows).epsilon(1e-4));
      const double tolerance = dtype == torch::kFloat32 ? 1e-5 : 1e-2;  // bf16's g is rounded to bf16
      CHECK(relative(g_rows.to(torch::kFloat32), sf.grad()) < tolerance);
      // in place (fp32: g is s itself, as the fused loss has it)
      if (dtype == torch::kFloat32) {
        auto inplace = s.clone();
        double c = 0, k = 0;
        ordo::train::detail::logit_gradients(inplace, q, y, Vk, 4.0, 0.3, inplace, c, k, true);
        CHECK(torch::equal(inplace, g_rows));
      }
    }
}

TEST_CASE("in bf16 mixed precision the fused loss is as close to fp32's as the unfused one") {
  for (const bool tied : {true, false}) {
    auto config = tiny_config(40, 40);
    config.tie_word_embeddings = tied;
    auto student = tiny_decoder(config, 11, 0.5);
    auto teacher = tiny_decoder(tiny_config(48, 40), 12, 0.5);
    auto b = ordo::data::collate(sequences(6));
    const auto fp32 = kd_backward(student, b, teacher_logits(teacher, b), 0);
    const auto target = teacher_logits(teacher, b, torch::kBFloat16);
    CHECK(torch::equal(target, target.to(torch::kBFloat16).to(torch::kFloat32)));  // bf16's logits (head: fp32)
    const auto unfused = kd_backward(student, b, target, 0, torch::kBFloat16);
    const auto fused = kd_backward(student, b, target, 7, torch::kBFloat16);
    // the head's gradient over 3 rows at a time (80 bytes per row of g): flushed many times
    const auto flushed = kd_backward(student, b, target, 2, torch::kBFloat16, 3 * 40 * 2);
    for (const auto* f : {&fused, &flushed}) {
      CHECK(relative(f->loss, unfused.loss) < 1e-5);  // the same bf16 logits, fp32 softmaxes
      CHECK(relative(f->ce, unfused.ce) < 1e-5);
      CHECK(relative(f->kl, unfused.kl) < 1e-5);
      for (const auto& [name, g] : f->grads) CHECK((g.scalar_type() == torch::kFloat32));
    }
    const double unfused_off = worst_gradient(unfused, fp32), fused_off = worst_gradient(fused, fp32),
                 flushed_off = worst_gradient(flushed, fp32);
    MESSAGE("tied " << tied << ": worst gradient difference from fp32's (relative): unfused bf16 " << unfused_off
                    << ", fused bf16 " << fused_off << ", fused bf16 flushed every 3 rows " << flushed_off
                    << "; fused from unfused " << worst_gradient(fused, unfused));
    CHECK(unfused_off > 1e-4);  // bf16 products do differ from fp32's
    CHECK(fused_off < 1.5 * unfused_off);
    CHECK(flushed_off < 1.5 * unfused_off);
    CHECK(worst_gradient(fused, unfused) < 0.5 * unfused_off);
  }
  CHECK(error_of([] {
          auto h = torch::zeros({2, 4}), w = torch::zeros({5, 4}), q = torch::zeros({2, 5});
          ordo::train::chunked_kd_loss(h, w, q, torch::zeros({2}, torch::kLong), 4.0, 0.3, 1, torch::kFloat16);
        }) == "ordo::train::chunked_kd_loss: products must be float32 or bfloat16 (got Half)");
}

TEST_CASE("Distill with Context::vocab_loss_chunk trains as the unfused loss does, in fp32 and bf16; a bad chunk is an error") {
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
  // bf16 mixed precision on the CPU: the teacher multiplies with bf16 copies of its weights
  // during the stage (CausalLM::keep_autocast_copies), dropped when it ends
  const auto teacher_copies = [&] {
    std::size_t n = 0;
    for (const auto& m : ctx.teacher->lm()->modules(false))
      if (auto* l = m->as<ordo::model::LinearImpl>()) n += l->autocast_copy().defined() ? 1 : 0;
    return n;
  };
  // bf16 mixed precision: the fused loss trains as far from fp32's training as the unfused one
  // does (mean absolute difference over all weights; the largest is a sign flip of some tiny
  // gradient, a whole AdamW step, in either)
  ctx.train_dtype = torch::kBFloat16;
  std::size_t during = 0;
  ctx.progress = [&](const std::string& what, double, const std::string&) {
    if (what == "distill") during = std::max(during, teacher_copies());
  };
  auto fused_bf16 = ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  ctx.progress = nullptr;
  std::size_t linears = 0;
  for (const auto& m : ctx.teacher->lm()->modules(false)) linears += m->as<ordo::model::LinearImpl>() ? 1 : 0;
  CHECK(linears == 15);  // 2 layers x 7, and the head
  CHECK(during == linears);
  CHECK(teacher_copies() == 0);
  ctx.vocab_loss_chunk = 0;
  auto unfused_bf16 = ordo::apply_stage(ordo::Distill<ordo::T4, ordo::A03>{}, base, ctx);
  const auto mean_apart = [](const ordo::DenseModel& a, const ordo::DenseModel& b) {
    double sum = 0, n = 0;
    auto pb = b.lm()->named_parameters();
    for (const auto& p : a.lm()->named_parameters()) {
      sum += (p.value() - pb[p.key()]).abs().sum().item<double>();
      n += static_cast<double>(p.value().numel());
    }
    return sum / n;
  };
  const double bf16_off = mean_apart(unfused_bf16, unfused), fused_bf16_off = mean_apart(fused_bf16, unfused),
               mean_moved = mean_apart(unfused, base);
  MESSAGE("mean weight movement " << mean_moved << "; from fp32's training: unfused bf16 " << bf16_off
                                  << ", fused bf16 " << fused_bf16_off << "; fused from unfused bf16 "
                                  << mean_apart(fused_bf16, unfused_bf16));
  CHECK(bf16_off > 0);
  CHECK(fused_bf16_off < 1.5 * bf16_off);
  CHECK(fused_bf16_off < 0.2 * mean_moved);
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

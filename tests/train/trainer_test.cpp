// ordo::train on tiny random decoders built in C++: the learning-rate schedule, the token loss,
// gradient accumulation, the non-finite guard, checkpoints whose resumed run equals an
// uninterrupted one bit for bit, and the fused AdamW step against LibTorch's.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros
#include "../test_support.hpp"   // error_of
#include "../tiny_decoder.hpp"   // tiny_decoder

#include <cmath>
#include <cstring>
#include <filesystem>
#include <unistd.h>

#include <ordo/train/trainer.hpp>

namespace fs = std::filesystem;
using ordo::train::TrainOptions;

namespace {

ordo::model::CausalLM tiny_lm(std::uint64_t seed) {
  return tiny_decoder(tiny_config(48, 40), seed);
}

// Counting sequences (start, start+1, ...) mod the vocabulary, of varied lengths: learnable.
std::vector<ordo::Example> counting(int n, int min_len, int max_len) {
  std::vector<ordo::Example> out;
  for (int i = 0; i < n; ++i) {
    ordo::Example e;
    const int len = min_len + (i * 7) % (max_len - min_len + 1);
    for (int t = 0; t < len; ++t) e.ids.push_back((i * 5 + t) % 48);
    e.labels = e.ids;
    e.labels[0] = -100;
    out.push_back(e);
  }
  return out;
}

double mean_loss(ordo::model::CausalLM& lm, const std::vector<ordo::Example>& ex) {
  torch::NoGradGuard no_grad;
  auto b = ordo::data::collate(ex);
  return ordo::train::token_cross_entropy_sum(lm->forward(b.ids, b.attention_mask), b.labels).item<double>() /
         static_cast<double>(b.scored_tokens);
}

bool same_parameters(ordo::model::CausalLM& a, ordo::model::CausalLM& b) {
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  return true;
}

double max_difference(ordo::model::CausalLM& a, ordo::model::CausalLM& b) {
  double d = 0;
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) d = std::max(d, (p.value() - pb[p.key()]).abs().max().item<double>());
  return d;
}

TrainOptions quick(int epochs = 2) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 3;
  o.grad_accumulation = 2;
  o.learning_rate = 3e-3;
  o.weight_decay = 0.01;
  o.warmup_steps = 2;
  o.max_grad_norm = 1.0;
  o.seed = 11;
  return o;
}

fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("ordo_test_train_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("schedule: linear warmup, then cosine or linear decay") {
  ordo::train::Schedule s{1.0, 4, 14, ordo::train::Decay::cosine, 0.0};
  CHECK(s.at(0) == doctest::Approx(0.25));
  CHECK(s.at(3) == doctest::Approx(1.0));
  CHECK(s.at(4) == doctest::Approx(1.0));
  CHECK(s.at(9) == doctest::Approx(0.5));  // half way through the decay
  CHECK(s.at(13) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 0.9))));
  s.decay = ordo::train::Decay::linear;
  s.final_ratio = 0.1;
  CHECK(s.at(9) == doctest::Approx(0.1 + 0.9 * 0.5));
  CHECK(ordo::train::decay_from_name("linear") == ordo::train::Decay::linear);
  CHECK_THROWS_AS(ordo::train::decay_from_name("step"), std::invalid_argument);
}

TEST_CASE("token_cross_entropy_sum: logits at t predict labels at t + 1; -100 and padding not scored") {
  auto logits = torch::tensor({0.5f, -1.0f, 2.0f, 1.0f, 0.0f, 0.0f, 3.0f, 1.0f, -2.0f}).view({1, 3, 3});
  auto labels = torch::tensor({-100, 2, -100}, torch::kLong).view({1, 3});
  // Only position 0 predicts a scored label (2): -log softmax([0.5, -1, 2])[2].
  const double expected = -(2.0 - std::log(std::exp(0.5) + std::exp(-1.0) + std::exp(2.0)));
  CHECK(ordo::train::token_cross_entropy_sum(logits, labels).item<double>() == doctest::Approx(expected));
  labels = torch::tensor({-100, 2, 0}, torch::kLong).view({1, 3});
  const double second = -(1.0 - std::log(std::exp(1.0) + 2.0));  // position 1 predicts 0
  CHECK(ordo::train::token_cross_entropy_sum(logits, labels).item<double>() == doctest::Approx(expected + second));
}

TEST_CASE("fine_tune lowers the loss, reports progress, and is deterministic") {
  auto data = counting(12, 6, 12);
  auto lm = tiny_lm(1);
  const double before = mean_loss(lm, data);
  ordo::progress_fn progress;  // none, unless a test sets it
  std::vector<std::string> lines;
  progress = [&](const std::string& what, double f, const std::string& d) {
    lines.push_back(what + " " + std::to_string(f) + " " + d);
  };
  auto o = quick(10);
  o.learning_rate = 1e-2;
  o.label = "recovery";
  auto r = ordo::train::fine_tune(lm, data, o, progress);
  const double after = mean_loss(lm, data);
  MESSAGE("loss " << before << " -> " << after << " in " << r.end_step << " steps");
  CHECK(r.total_steps == 10 * 2);  // 12 examples / 3 per batch = 4 micro-batches = 2 steps per epoch
  CHECK(r.finished());
  CHECK(after < 0.7 * before);
  CHECK(r.losses.back() < r.losses.front());
  REQUIRE(lines.size() == 20);
  CHECK(lines.back().find("recovery 1.0") == 0);
  CHECK(lines.back().find("step 20/20 loss ") != std::string::npos);
  CHECK(lines.back().find(" tok/s eta ") != std::string::npos);
  auto again = tiny_lm(1);
  ordo::train::fine_tune(again, data, o, progress);
  CHECK(same_parameters(lm, again));
}

TEST_CASE("gradient accumulation: the same step as one large batch, weighting every token equally") {
  auto data = counting(8, 4, 11);  // unequal lengths: per-token normalisation over the window matters
  auto a = tiny_lm(2), b = tiny_lm(2);
  ordo::progress_fn progress;  // none, unless a test sets it
  auto o = quick(1);
  o.shuffle = false;
  o.batch_size = 8;
  o.grad_accumulation = 1;
  ordo::train::fine_tune(a, data, o, progress);
  o.batch_size = 2;
  o.grad_accumulation = 4;
  ordo::train::fine_tune(b, data, o, progress);
  CHECK(max_difference(a, b) < 1e-5);
  auto untouched = tiny_lm(2);
  CHECK(max_difference(a, untouched) > 1e-4);  // it did train
}

TEST_CASE("a resumed run equals an uninterrupted one, bit for bit") {
  auto data = counting(10, 5, 9);
  const auto dir = temp_dir("resume");
  ordo::progress_fn progress;  // none, unless a test sets it
  auto o = quick(3);           // 10 examples: 4 micro-batches, 2 steps per epoch, 6 steps
  auto whole = tiny_lm(3);
  auto rw = ordo::train::fine_tune(whole, data, o, progress);
  REQUIRE(rw.total_steps == 6);

  o.checkpoint = dir / "run.pt";
  o.stop_after = 3;  // stop mid-epoch, then again at step 5
  auto first = tiny_lm(3);
  auto r1 = ordo::train::fine_tune(first, data, o, progress);
  CHECK(r1.end_step == 3);
  CHECK_FALSE(r1.finished());
  CHECK(fs::exists(o.checkpoint));
  o.stop_after = 2;
  auto second = tiny_lm(3);
  auto r2 = ordo::train::fine_tune(second, data, o, progress);
  CHECK(r2.start_step == 3);
  CHECK(r2.end_step == 5);
  o.stop_after = 0;
  auto third = tiny_lm(3);
  auto r3 = ordo::train::fine_tune(third, data, o, progress);
  CHECK(r3.start_step == 5);
  CHECK(r3.finished());
  CHECK(same_parameters(whole, third));
  CHECK(r3.losses.back() == rw.losses.back());
  // Only the checkpoint is left in the directory: no temporary files.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  // A checkpoint of another run (other options, or other starting weights) is refused.
  auto other = tiny_lm(3);
  o.learning_rate = 1e-3;
  auto msg = error_of([&] { ordo::train::fine_tune(other, data, o, progress); });
  CHECK(msg.find("a checkpoint of another run; refusing to resume") != std::string::npos);
  CHECK(msg.find("lr=0.001") != std::string::npos);
  o.learning_rate = quick().learning_rate;
  auto other_weights = tiny_lm(97);
  msg = error_of([&] { ordo::train::fine_tune(other_weights, data, o, progress); });
  CHECK(msg.find("a checkpoint of another run; refusing to resume") != std::string::npos);
  CHECK(same_parameters(third, whole));
  fs::remove_all(dir);
}

TEST_CASE("checkpoints by the clock survive a run that dies mid-step; none at the end when the caller keeps the result") {
  auto data = counting(10, 5, 9);
  const auto dir = temp_dir("clock");
  ordo::progress_fn progress;
  auto o = quick(3);  // 6 steps
  auto whole = tiny_lm(4);
  ordo::train::fine_tune(whole, data, o, progress);

  o.checkpoint = dir / "run.pt";
  o.checkpoint_seconds = 1e-9;  // due after every step
  o.checkpoint_at_end = false;
  struct died {};
  ordo::progress_fn dies_at_step_4 = [](const std::string&, double, const std::string& detail) {
    if (detail.rfind("step 4/", 0) == 0) throw died{};  // before step 4's checkpoint
  };
  auto first = tiny_lm(4);
  CHECK_THROWS_AS(ordo::train::fine_tune(first, data, o, dies_at_step_4), died);
  auto second = tiny_lm(4);
  const auto r = ordo::train::fine_tune(second, data, o, progress);
  CHECK(r.start_step == 3);
  CHECK(r.finished());
  CHECK(same_parameters(second, whole));
  // The last checkpoint is step 5's: the sixth, the end, was not written.
  auto third = tiny_lm(4);
  const auto again = ordo::train::fine_tune(third, data, o, progress);
  CHECK(again.start_step == 5);
  CHECK(same_parameters(third, whole));
  o.checkpoint_seconds = -1;
  CHECK(error_of([&] { ordo::train::fine_tune(third, data, o, progress); }).find("checkpoint_seconds must be >= 0") !=
        std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("checkpoints in a directory are named by the run: runs sharing it never meet") {
  auto data = counting(10, 5, 9);
  const auto dir = temp_dir("dir");
  ordo::progress_fn progress;  // none, unless a test sets it
  auto o = quick(2);
  auto whole = tiny_lm(6);
  ordo::train::fine_tune(whole, data, o, progress);
  o.checkpoint_dir = dir;
  o.stop_after = 1;
  auto a = tiny_lm(6);
  auto ra = ordo::train::fine_tune(a, data, o, progress);
  CHECK(ra.checkpoint.parent_path() == dir);
  CHECK(ra.checkpoint.filename().string().rfind("train-", 0) == 0);
  auto b = tiny_lm(7);  // another starting model: its own checkpoint, no error
  auto rb = ordo::train::fine_tune(b, data, o, progress);
  CHECK(rb.start_step == 0);
  CHECK(rb.checkpoint != ra.checkpoint);
  o.stop_after = 0;
  auto a2 = tiny_lm(6);
  auto ra2 = ordo::train::fine_tune(a2, data, o, progress);
  CHECK(ra2.start_step == 1);
  CHECK(same_parameters(a2, whole));
  fs::remove_all(dir);
}

TEST_CASE("the guard stops on a non-finite loss and keeps the last good parameters") {
  auto data = counting(12, 6, 10);
  ordo::progress_fn progress;  // none, unless a test sets it
  auto o = quick(2);
  o.grad_accumulation = 1;  // 4 steps per epoch
  auto reference = tiny_lm(4);
  o.stop_after = 2;
  ordo::train::fine_tune(reference, data, o, progress);
  o.stop_after = 0;

  auto lm = tiny_lm(4);
  int calls = 0;
  auto poisoned = [&](ordo::model::CausalLM& m, const ordo::data::Batch& b) {
    auto l = ordo::train::token_cross_entropy_sum(m->forward(b.ids, b.attention_mask), b.labels);
    return ++calls == 3 ? l * std::numeric_limits<double>::quiet_NaN() : l;
  };
  std::string msg;
  try {
    ordo::train::train(lm, data, poisoned, o, progress);
  } catch (const ordo::train::NonFiniteLoss& e) {
    msg = e.what();
  }
  CHECK(msg.find("the loss is not finite at step 3 of 8") != std::string::npos);
  CHECK(msg.find("holds the parameters after step 2") != std::string::npos);
  CHECK(same_parameters(lm, reference));
}

TEST_CASE("invalid options and data are clear errors") {
  auto lm = tiny_lm(5);
  ordo::progress_fn progress;  // none, unless a test sets it
  auto data = counting(4, 4, 6);
  auto o = quick(1);
  o.batch_size = 0;
  CHECK(error_of([&] { ordo::train::fine_tune(lm, data, o, progress); }) ==
        "ordo::train (train): batch_size must be at least 1 (got 0)");
  o = quick(1);
  o.learning_rate = -1;
  CHECK(error_of([&] { ordo::train::fine_tune(lm, data, o, progress); }).find("learning_rate must be positive") !=
        std::string::npos);
  o = quick(1);
  o.warmup_fraction = 1.5;
  CHECK(error_of([&] { ordo::train::fine_tune(lm, data, o, progress); }).find("warmup_fraction") != std::string::npos);
  CHECK(error_of([&] { ordo::train::fine_tune(lm, {}, quick(1), progress); }) ==
        "ordo::train (train): no training examples");
  auto bad = data;
  bad[2].ids[1] = 48;
  bad[2].labels[1] = 48;
  CHECK(error_of([&] { ordo::train::fine_tune(lm, bad, quick(1), progress); }) ==
        "train example 2: token 1 has id 48, outside the model's vocabulary of 48");
  o = quick(1);
  o.compute_dtype = torch::kFloat16;
  CHECK(error_of([&] { ordo::train::fine_tune(lm, data, o, progress); }) ==
        "ordo::train (train): compute_dtype must be float32 or bfloat16 (got Half)");
}

TEST_CASE("bf16 mixed precision: fp32 master weights and gradients, bf16 matmuls, the loss still falls") {
  auto data = counting(12, 6, 12);
  ordo::progress_fn progress;  // none, unless a test sets it
  auto o = quick(10);
  o.learning_rate = 1e-2;

  // One step's gradients: bf16 compute gives fp32 gradients close to the fp32 ones, not equal.
  auto g32 = tiny_lm(5), g16 = tiny_lm(5);
  auto grads = [&](ordo::model::CausalLM& lm, torch::ScalarType dtype) {
    auto b = ordo::data::collate(data);
    for (auto& p : lm->parameters()) p.set_requires_grad(true);
    torch::Tensor logits, loss;
    {
      ordo::train::AutocastGuard mixed(dtype);
      logits = lm->forward(b.ids, b.attention_mask);
      loss = ordo::train::token_cross_entropy_sum(logits, b.labels);
    }
    CHECK(!ordo::compat::autocast_enabled(torch::kCPU));  // the guard restored the state
    loss.backward();
    std::vector<torch::Tensor> out;
    for (auto& p : lm->parameters()) out.push_back(p.grad().clone());
    return std::pair{logits.scalar_type(), out};
  };
  const auto [t32, a] = grads(g32, torch::kFloat32);
  const auto [t16, b] = grads(g16, torch::kBFloat16);
  CHECK(std::string(c10::toString(t32)) == "Float");
  CHECK(std::string(c10::toString(t16)) == "Float");  // the decoder returns fp32 logits in either case
  double worst = 0, differs = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK((b[i].scalar_type() == c10::ScalarType::Float));
    const double scale = a[i].abs().max().item<double>() + 1e-12;
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>() / scale);
    differs = std::max(differs, (a[i] - b[i]).abs().max().item<double>());
  }
  MESSAGE("bf16 vs fp32 gradients: worst relative difference " << worst);
  CHECK(worst < 0.1);  // bf16 keeps 8 bits of mantissa
  CHECK(differs > 0);  // the matmuls really ran in bf16

  // Training: parameters stay fp32, the loss falls as in fp32, and the run is deterministic.
  auto lm = tiny_lm(1);
  const double before = mean_loss(lm, data);
  o.compute_dtype = torch::kBFloat16;
  ordo::train::fine_tune(lm, data, o, progress);
  for (const auto& p : lm->parameters()) CHECK((p.scalar_type() == c10::ScalarType::Float));
  const double after = mean_loss(lm, data);
  MESSAGE("bf16 training: loss " << before << " -> " << after);
  CHECK(after < 0.7 * before);
  auto again = tiny_lm(1);
  ordo::train::fine_tune(again, data, o, progress);
  CHECK(same_parameters(lm, again));
  auto fp32 = tiny_lm(1);
  o.compute_dtype = torch::kFloat32;
  ordo::train::fine_tune(fp32, data, o, progress);
  CHECK(!same_parameters(lm, fp32));
}

namespace {

// Bits, not values: +0 and -0 differ, and so would two NaNs of other payloads.
bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), static_cast<std::size_t>(a.nbytes())) == 0;
}

// Parameters of lengths that meet every loop of the kernels: shorter than a vector, a vector
// and one more, and long enough to be split over the threads (LibTorch's grain is 32768).
std::vector<torch::Tensor> odd_parameters(std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> out;
  for (const std::int64_t n : {1, 7, 16, 17, 33, 1000, 100003})
    out.push_back((torch::randn({n}, gen) * torch::exp(torch::randn({n}, gen) * 2)).set_requires_grad(true));
  return out;
}

// Step `step` of the AdamW comparisons below: both optimizers at the step's learning rate
// (rising), the same random gradients for both sets of parameters (a signed zero on step 1), and
// the clipping's factor to apply (0.25 on even steps, 1 on odd ones).
double prepare_adamw_step(int step, torch::optim::AdamW& a, torch::optim::AdamW& b, std::vector<torch::Tensor>& pa,
                          std::vector<torch::Tensor>& pb, at::Generator& gen) {
  const double lr = 3e-3 * (step + 1) / 6.0;
  for (auto* opt : {&a, &b})
    for (auto& group : opt->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  for (std::size_t i = 0; i < pa.size(); ++i) {
    auto g = torch::randn({pa[i].numel()}, gen) * 1e-2;
    if (step == 1) g[0] = -0.0;  // signed zeros go through as LibTorch's do
    pa[i].mutable_grad() = g.clone();
    pb[i].mutable_grad() = g.clone();
  }
  return step % 2 == 0 ? 0.25 : 1.0;
}

}  // namespace

TEST_CASE("the fused AdamW step: LibTorch's parameters and moments bit for bit, on every path and split") {
  torch::optim::AdamWOptions options(3e-3);
  options.weight_decay(0.01).betas({0.9, 0.95}).eps(1e-8);
  const auto rounding = ordo::train::probe_adamw_rounding(options);
  // Both LibTorch builds ordo is tested on round as one of adamw_cpu's variants; were a build to
  // round otherwise, training would silently take LibTorch's slower step.
  REQUIRE(rounding.has_value());
  MESSAGE("rounding: first moment fma " << rounding->formula.first_moment_fma << ", second moment fma "
                                        << rounding->formula.second_moment_fma << ", reciprocal "
                                        << rounding->formula.divide_by_reciprocal << ", LibTorch's sqrt "
                                        << rounding->libtorch_sqrt);

  for (const int threads : {1, 2}) {
    torch::set_num_threads(threads);
    auto fused = odd_parameters(3), reference = odd_parameters(3);
    torch::optim::AdamW fused_opt(fused, options), reference_opt(reference, options);
    auto gen = at::detail::createCPUGenerator(9);
    for (int step = 0; step < 6; ++step) {
      const double scale = prepare_adamw_step(step, fused_opt, reference_opt, fused, reference, gen);
      // From step 3 on the fused optimizer alternates with LibTorch's: the two share one state.
      ordo::train::adamw_step(fused_opt, scale, step >= 3 && step % 2 == 1 ? std::nullopt : rounding);
      ordo::train::adamw_step(reference_opt, scale, std::nullopt);
      for (std::size_t i = 0; i < fused.size(); ++i) {
        CAPTURE(threads);
        CAPTURE(step);
        CAPTURE(fused[i].numel());
        CHECK(same_bits(fused[i], reference[i]));
        const auto key_f = ordo::compat::optimizer_state_key(fused[i]);
        const auto key_r = ordo::compat::optimizer_state_key(reference[i]);
        const auto& sf = static_cast<const torch::optim::AdamWParamState&>(*fused_opt.state().at(key_f));
        const auto& sr = static_cast<const torch::optim::AdamWParamState&>(*reference_opt.state().at(key_r));
        CHECK(sf.step() == sr.step());
        CHECK(same_bits(sf.exp_avg(), sr.exp_avg()));
        CHECK(same_bits(sf.exp_avg_sq(), sr.exp_avg_sq()));
      }
    }
  }
  torch::set_num_threads(2);

  // The AVX-512, AVX2 and portable loops of adamw_cpu give the same bits, with the square roots
  // taken in its loop or by a library between its two phases (blocks of 2048 and 16384 crossed).
  auto gen = at::detail::createCPUGenerator(4);
  const auto n = 40000 + 13;
  // Small parameters and a large step, so that the update's last bits show in p.
  const auto p0 = torch::randn({n}, gen) * 1e-3, g = torch::randn({n}, gen) * 1e-2, m0 = torch::randn({n}, gen) * 1e-3,
             v0 = torch::rand({n}, gen) * 1e-4;
  ordo::train::adamw_cpu::Coefficients c;
  c.grad_scale = 0.5f;
  c.decay = 0.99f;
  c.bias2_sqrt = 0.3f;
  c.neg_step = -0.5f;
  std::vector<std::vector<torch::Tensor>> results;
  const ordo::train::adamw_cpu::sqrt_fn ieee = [](float* x, std::size_t k) {
    for (std::size_t i = 0; i < k; ++i) x[i] = std::sqrt(x[i]);
  };
  for (const auto library : {false, true})
    for (const auto isa : ordo::quant::nf4::runnable_isas())
      for (const auto& r : ordo::train::adamw_cpu::roundings) {
        auto p = p0.clone(), m = m0.clone(), v = v0.clone();
        ordo::train::adamw_cpu::update(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(),
                                       v.data_ptr<float>(), static_cast<std::size_t>(n), c, r, isa,
                                       library ? ieee : nullptr);
        results.push_back({p, m, v});
      }
  const auto variants = std::size(ordo::train::adamw_cpu::roundings);
  MESSAGE((results.size() / variants / 2) << " code paths on this CPU");
  for (std::size_t i = variants; i < results.size(); ++i)
    for (int k = 0; k < 3; ++k) CHECK(same_bits(results[i][k], results[i % variants][k]));
  // and the variants are not all alike: a probe can tell them apart
  CHECK(!same_bits(results[0][0], results[4][0]));  // reciprocal or division
  CHECK(!same_bits(results[0][2], results[1][2]));  // second moment fused or not
}

TEST_CASE("training with the fused AdamW step gives the parameters of LibTorch's step, bit for bit") {
  auto data = counting(12, 6, 12);
  ordo::progress_fn progress;
  auto o = quick(3);
  o.max_grad_norm = 0.05;  // clipped on most steps
  auto fused = tiny_lm(6), reference = tiny_lm(6);
  ordo::train::fine_tune(fused, data, o, progress);
  o.fused_adamw = false;
  ordo::train::fine_tune(reference, data, o, progress);
  CHECK(same_parameters(fused, reference));
  auto untouched = tiny_lm(6);
  CHECK(max_difference(fused, untouched) > 1e-4);  // it did train

  // Parameters the fused pass does not take (here fp64) get LibTorch's step.
  auto p = torch::randn({10}, torch::kFloat64).set_requires_grad(true);
  const auto p0 = p.detach().clone();
  auto q = p.detach().clone().set_requires_grad(true);
  torch::optim::AdamW a({p}, torch::optim::AdamWOptions(1e-2)), b({q}, torch::optim::AdamWOptions(1e-2));
  p.mutable_grad() = torch::ones_like(p);
  q.mutable_grad() = torch::ones_like(q);
  ordo::train::adamw_step(a, 0.5, ordo::train::AdamWRounding{});
  ordo::train::adamw_step(b, 0.5, std::nullopt);
  CHECK(torch::equal(p, q));
  CHECK(!torch::equal(p.detach(), p0));
}

TEST_CASE("LibTorch 2.x's multi-tensor fused AdamW (the step on a CUDA device): LibTorch's step within float rounding") {
  // The glue of the device step (state created as LibTorch creates it, step counts, the
  // clipping's factor as grad_scale) runs here on CPU tensors; on CUDA the kernel is LibTorch's
  // CUDA one. The CPU itself keeps the bit-exact pass: device_fusable refuses it.
  auto cpu = odd_parameters(5);
  torch::optim::AdamWOptions options(3e-3);
  options.weight_decay(0.01).betas({0.9, 0.95}).eps(1e-8);
  torch::optim::AdamW cpu_opt(cpu, options);
  for (auto& p : cpu) p.mutable_grad() = torch::ones_like(p);
  CHECK_FALSE(ordo::train::detail::device_fusable(cpu_opt));
  if constexpr (!ordo::compat::has_fused_adamw) {
    std::vector<torch::Tensor> ps{torch::zeros({2}), torch::zeros({2})}, ms{torch::zeros({2})}, st{torch::zeros({})};
    CHECK_THROWS_AS(ordo::compat::fused_adamw(ps, ps, ms, ms, st, 1e-3, 0.9, 0.999, 0.0, 1e-8, std::nullopt),
                    std::logic_error);
    MESSAGE("LibTorch " << ordo::compat::torch_major << "." << ordo::compat::torch_minor << ": no fused AdamW");
    return;
  }
  auto fused = odd_parameters(3), reference = odd_parameters(3);
  torch::optim::AdamW fused_opt(fused, options), reference_opt(reference, options);
  auto gen = at::detail::createCPUGenerator(11);
  double worst = 0.0;
  for (int step = 0; step < 6; ++step) {
    const double scale = prepare_adamw_step(step, fused_opt, reference_opt, fused, reference, gen);
    // From step 3 on LibTorch's step alternates with the fused one on the same state.
    if (step >= 3 && step % 2 == 1)
      ordo::train::adamw_step(fused_opt, scale, std::nullopt);
    else
      ordo::train::detail::multi_tensor_step(fused_opt, scale);
    ordo::train::adamw_step(reference_opt, scale, std::nullopt);
    for (std::size_t i = 0; i < fused.size(); ++i) {
      CAPTURE(step);
      CAPTURE(fused[i].numel());
      const auto key_f = ordo::compat::optimizer_state_key(fused[i]);
      const auto key_r = ordo::compat::optimizer_state_key(reference[i]);
      const auto& sf = static_cast<const torch::optim::AdamWParamState&>(*fused_opt.state().at(key_f));
      const auto& sr = static_cast<const torch::optim::AdamWParamState&>(*reference_opt.state().at(key_r));
      CHECK(sf.step() == sr.step());
      CHECK(sf.step() == step + 1);
      // relative to the parameter's own scale: the step moves each value by about lr
      const auto moved = (fused[i] - reference[i]).abs().max().item<double>();
      worst = std::max(worst, moved);
      CHECK(moved <= 1e-6 * std::max(1.0, reference[i].abs().max().item<double>()));
      CHECK((sf.exp_avg() - sr.exp_avg()).abs().max().item<double>() <= 1e-8);
      CHECK((sf.exp_avg_sq() - sr.exp_avg_sq()).abs().max().item<double>() <= 1e-10);
    }
  }
  MESSAGE("multi-tensor fused AdamW against LibTorch's step: largest parameter difference " << worst);
  // and it did move the parameters as LibTorch does (not a step that does nothing)
  CHECK((fused[6] - odd_parameters(3)[6]).abs().max().item<double>() > 1e-3);
}

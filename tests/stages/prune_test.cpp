// The P stage on tiny random decoders (tests/model/fixtures): the rounding rule, importance
// scores against hand computations, exactly the intended neurons kept, unchanged outputs when
// the removed neurons were already inert, padding not counted, invalid inputs, and the pruned
// config and weights reloading.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <cstdlib>
#include <random>
#include <set>
#include <tuple>

#include <unistd.h>  // getpid

#include <ordo/model/load_hf.hpp>  // load_hf, read_tensor
#include <ordo/io/safetensors.hpp>
#include <ordo/pipeline.hpp>
#include <ordo/stages/prune.hpp>

namespace fs = std::filesystem;
using ordo::model::DecoderLayerImpl;

namespace {

ordo::DenseModel tiny(const char* which = "llama3") {
  auto lm = ordo::model::load_hf(fs::path(ORDO_MODEL_FIXTURES) / which);
  return ordo::DenseModel(lm, nullptr, std::nullopt, ORDO_MODEL_FIXTURES);
}

DecoderLayerImpl& layer(ordo::model::CausalLM& lm, std::size_t i) {
  return *lm->model->layers->ptr<DecoderLayerImpl>(i);
}

// Calibration examples of unequal lengths (3..17 tokens), ids in [1, vocab).
std::vector<ordo::Example> calibration(std::int64_t vocab, int count = 7, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::vector<ordo::Example> out;
  for (int e = 0; e < count; ++e) {
    ordo::Example ex;
    const int len = 3 + static_cast<int>(rng() % 15);
    for (int t = 0; t < len; ++t) ex.ids.push_back(1 + static_cast<std::int64_t>(rng() % (vocab - 1)));
    ex.labels = ex.ids;
    out.push_back(ex);
  }
  return out;
}

ordo::Context context_for(const ordo::DenseModel& m, int count = 7) {
  ordo::Context ctx;
  ctx.calibration = calibration(m.config().vocab_size, count);
  ctx.budget.calibration_samples = count;
  ctx.budget.batch_size = 3;
  ctx.budget.prune_recovery = false;
  return ctx;
}

torch::Tensor ids_batch() { return torch::arange(1, 23, torch::kLong).remainder(96).view({2, 11}); }

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Writes `lm` as a Hugging Face directory: config.json and model.safetensors (fp32).
void save_hf(ordo::model::CausalLM& lm, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<torch::Tensor> keep_alive;
  std::vector<ordo::io::safetensors::TensorEntry> entries;
  for (const auto& p : lm->named_parameters()) {
    auto t = p.value().detach().to(torch::kFloat32).contiguous();
    keep_alive.push_back(t);
    ordo::io::safetensors::TensorEntry e;
    e.name = p.key();
    e.dtype = ordo::io::safetensors::Dtype::F32;
    for (auto s : t.sizes()) e.shape.push_back(static_cast<std::uint64_t>(s));
    e.data = std::span<const std::byte>(static_cast<const std::byte*>(t.data_ptr()),
                                        static_cast<std::size_t>(t.numel()) * sizeof(float));
    entries.push_back(e);
  }
  ordo::io::safetensors::write(dir / "model.safetensors", entries, {{"format", "pt"}});
  std::ofstream(dir / "config.json") << lm->config().to_json().dump(2);
}

}  // namespace

TEST_CASE("rounding: floor(width * ratio) neurons removed, as the paper's 11008 -> 7706") {
  static_assert(ordo::prune::kept_neurons(11008, 30) == 7706);
  CHECK(ordo::prune::kept_neurons(std::int64_t{11008}, 0.3) == 7706);
  // Cases that tell the rule from its neighbours: round(10 * 0.35) = 4 would keep 6,
  // int(16 * 0.7) = 11 (truncating the kept count) would keep 11.
  CHECK(ordo::prune::kept_neurons(10, 35) == 7);
  CHECK(ordo::prune::kept_neurons(std::int64_t{10}, 0.35) == 7);
  CHECK(ordo::prune::kept_neurons(16, 30) == 12);
  CHECK(ordo::prune::kept_neurons(std::int64_t{16}, 0.3) == 12);
  CHECK(ordo::prune::kept_neurons(96, 30) == 68);
  CHECK(ordo::prune::kept_neurons(2, 30) == 2);  // too narrow to lose a neuron
  // The ratio form agrees with the exact integer form for every percent and width, despite
  // binary rounding of ratio * width (100 * 0.29 is 28.999999999999996).
  int mismatches = 0;
  for (int percent = 1; percent < 100; ++percent)
    for (std::int64_t width = 1; width <= 12000; width += (width < 2000 ? 1 : 7))
      mismatches += ordo::prune::kept_neurons(width, percent) != ordo::prune::kept_neurons(width, percent / 100.0);
  CHECK(mismatches == 0);
}

TEST_CASE("the layer-by-layer calibration pass computes what CausalLM::forward computes") {
  for (const char* which : {"llama3", "qwen2", "llama_tied"}) {
    const std::string name = which;
    CAPTURE(name);
    auto m = tiny(which);
    auto ids = ids_batch();
    auto mask = torch::ones_like(ids);
    mask[1].slice(0, 6).fill_(0);  // right padding on the second row
    std::vector<ordo::prune::detail::layer_stats> sums;
    for (auto w : m.config().intermediate_sizes) sums.emplace_back(w);
    auto collected = ordo::prune::detail::forward_collecting(m.lm(), ids, mask, sums);
    CHECK(max_diff(collected, m.logits(ids, mask)) < 1e-5);
    for (const auto& s : sums) {
      CHECK(s.gate_abs.min().item<double>() > 0.0);
      CHECK(s.x_sq.min().item<double>() > 0.0);
      CHECK(s.seq_mean_sq.min().item<double>() > 0.0);
    }
  }
}

TEST_CASE("importance scores equal a hand computation") {
  // With o_proj and down_proj zero, every layer's MLP sees post_attention_layernorm(embedding),
  // which the test computes on its own.
  auto m = tiny();
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < 2; ++i) {
    layer(m.lm(), i).self_attn->o_proj->weight.zero_();
    layer(m.lm(), i).mlp->down_proj->weight.zero_();
  }
  auto ctx = context_for(m);
  ctx.budget.calibration_samples = 5;  // only the first five examples count
  auto scores = ordo::prune::importance(m.lm(), ctx);
  REQUIRE(scores.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    auto& l = layer(m.lm(), i);
    auto weight = l.mlp->gate_proj->weight.to(torch::kFloat64).abs().sum(1) +
                  l.mlp->up_proj->weight.to(torch::kFloat64).abs().sum(1);
    auto sum = torch::zeros({96}, torch::kFloat64);
    double tokens = 0;
    for (int e = 0; e < 5; ++e) {
      auto ids = torch::tensor(ctx.calibration[e].ids, torch::kLong);
      auto h = l.post_attention_layernorm(m.lm()->model->embed_tokens(ids));
      sum += torch::matmul(h, l.mlp->gate_proj->weight.t()).abs().sum(0).to(torch::kFloat64);
      tokens += static_cast<double>(ids.size(0));
    }
    auto activation = sum / tokens;
    auto combined = 0.5 * weight / weight.max() + 0.5 * activation / activation.max();
    CHECK(max_diff(scores[i].weight, weight) < 1e-9 * weight.max().item<double>());
    CHECK(max_diff(scores[i].activation, activation) < 1e-5 * activation.max().item<double>());
    CHECK(max_diff(scores[i].combined, combined) < 1e-5);
    CHECK(scores[i].combined.max().item<double>() <= 1.0);
  }
  // Another mix of the two terms (beyond the paper).
  ordo::prune::Options quarter;
  quarter.weight_share = 0.25;
  auto mixed = ordo::prune::importance(m.lm(), ctx, quarter);
  for (std::size_t i = 0; i < 2; ++i) {
    auto expected =
        0.25 * scores[i].weight / scores[i].weight.max() + 0.75 * scores[i].activation / scores[i].activation.max();
    CHECK(max_diff(mixed[i].combined, expected) < 1e-12);
  }
}

TEST_CASE("the pruned model keeps exactly the intended neurons, in their order") {
  // Rows of gate/up are one vector scaled by s_i > 0 (a random permutation of 1..96 per layer),
  // so both importances are proportional to s_i: the kept set is the 68 largest s_i.
  auto m = tiny();
  std::mt19937 rng(7);
  std::vector<std::vector<double>> scale(2);
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < 2; ++i) {
      std::vector<int> perm(96);
      std::iota(perm.begin(), perm.end(), 1);
      std::shuffle(perm.begin(), perm.end(), rng);
      scale[i].assign(perm.begin(), perm.end());
      auto s = torch::tensor(scale[i], torch::kFloat32).unsqueeze(1);
      auto& mlp = *layer(m.lm(), i).mlp;
      mlp.gate_proj->weight.copy_(s * mlp.gate_proj->weight[0].unsqueeze(0));
      mlp.up_proj->weight.copy_(s * mlp.up_proj->weight[0].unsqueeze(0));
    }
  }
  auto before = ordo::model::clone(m.lm());
  auto ctx = context_for(m);
  auto pruned = ordo::apply_stage(ordo::Prune<30>{}, m, ctx);
  static_assert(std::is_same_v<decltype(pruned), ordo::DenseModel>);
  CHECK(pruned.config().intermediate_sizes == std::vector<std::int64_t>{68, 68});
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    std::vector<std::int64_t> expected;
    for (std::int64_t n = 0; n < 96; ++n)
      if (scale[i][n] > 28) expected.push_back(n);  // s in 29..96 kept, 1..28 removed
    auto idx = torch::tensor(expected, torch::kLong);
    auto& src = *layer(m.lm(), i).mlp;
    auto& dst = *layer(pruned.lm(), i).mlp;
    CHECK(torch::equal(dst.gate_proj->weight, src.gate_proj->weight.index_select(0, idx)));
    CHECK(torch::equal(dst.up_proj->weight, src.up_proj->weight.index_select(0, idx)));
    CHECK(torch::equal(dst.down_proj->weight, src.down_proj->weight.index_select(1, idx)));
    CHECK(dst.gate_proj->out_features == 68);
    CHECK(dst.down_proj->in_features == 68);
  }
  // Everything else is the same tensor values; the input model is untouched.
  auto after = pruned.lm()->named_parameters();
  auto orig = before->named_parameters();
  for (const auto& p : m.lm()->named_parameters()) {
    CAPTURE(p.key());
    CHECK(torch::equal(p.value(), orig[p.key()]));
    if (p.key().find(".mlp.") == std::string::npos) CHECK(torch::equal(after[p.key()], p.value()));
    CHECK(after[p.key()].requires_grad() == p.value().requires_grad());
  }
  CHECK(m.config().intermediate_sizes == std::vector<std::int64_t>{96, 96});
  CHECK(pruned.memory_bytes() < m.memory_bytes());

  // Per-layer ratios: 30 % of layer 0 (s <= 28 go), 50 % of layer 1 (s <= 48 go).
  auto mixed = ordo::prune::prune_ffn(m, {0.3, 0.5}, ctx);
  CHECK(mixed.config().intermediate_sizes == std::vector<std::int64_t>{68, 48});
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    std::vector<std::int64_t> expected;
    for (std::int64_t n = 0; n < 96; ++n)
      if (scale[i][n] > (i == 0 ? 28 : 48)) expected.push_back(n);
    auto idx = torch::tensor(expected, torch::kLong);
    CHECK(torch::equal(layer(mixed.lm(), i).mlp->up_proj->weight,
                       layer(m.lm(), i).mlp->up_proj->weight.index_select(0, idx)));
    CHECK(torch::equal(layer(mixed.lm(), i).mlp->down_proj->weight,
                       layer(m.lm(), i).mlp->down_proj->weight.index_select(1, idx)));
  }
}

TEST_CASE("a bf16 model is pruned in bf16") {
  auto m = tiny();
  m.lm()->to(torch::kBFloat16);
  auto ctx = context_for(m);
  auto pruned = ordo::apply_stage(ordo::Prune<30>{}, m, ctx);
  CHECK(pruned.config().intermediate_sizes == std::vector<std::int64_t>{68, 68});
  for (const auto& p : pruned.lm()->parameters()) CHECK((p.scalar_type() == torch::kBFloat16));
  CHECK(torch::isfinite(pruned.logits(ids_batch())).all().item<bool>());
}

TEST_CASE("ties: the lower index is kept") {
  ordo::prune::layer_importance s;
  s.combined = torch::tensor({0.5, 1.0, 0.5, 0.5, 0.2}, torch::kFloat64);
  auto keep = ordo::prune::select_kept({s}, {0.4});  // floor(5 * 0.4) = 2 removed
  REQUIRE(keep.size() == 1);
  CHECK(torch::equal(keep[0], torch::tensor({0, 1, 2}, torch::kLong)));
}

TEST_CASE("removing neurons that were already inert leaves the outputs unchanged") {
  auto m = tiny("qwen2");
  std::mt19937 rng(3);
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < 2; ++i) {
    std::vector<std::int64_t> all(96);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    auto dead = torch::tensor(std::vector<std::int64_t>(all.begin(), all.begin() + 28), torch::kLong);
    auto& mlp = *layer(m.lm(), i).mlp;
    mlp.gate_proj->weight.index_fill_(0, dead, 0.0);
    mlp.up_proj->weight.index_fill_(0, dead, 0.0);
  }
  auto ctx = context_for(m);
  auto pruned = ordo::Pipeline<ordo::Prune<30>>::run(m, ctx);
  CHECK(pruned.config().intermediate_sizes == std::vector<std::int64_t>{68, 68});
  auto ids = ids_batch();
  auto mask = torch::ones_like(ids);
  mask[0].slice(0, 8).fill_(0);
  const auto reference = m.logits(ids, mask);
  MESSAGE("max |logit change|: " << max_diff(pruned.logits(ids, mask), reference));
  CHECK(max_diff(pruned.logits(ids, mask), reference) < 1e-5);
  // Control: pruning live neurons changes the logits.
  auto more = ordo::prune::prune_ffn(m, {0.5, 0.5}, ctx);
  CHECK(max_diff(more.logits(ids, mask), reference) > 1e-3);
}

TEST_CASE("padding does not count in the activation importance") {
  auto m = tiny();
  auto ctx = context_for(m);
  ctx.budget.batch_size = 1;  // no padding at all
  auto alone = ordo::prune::importance(m.lm(), ctx);
  for (std::int64_t batch : {2, 7}) {  // padded batches of unequal lengths
    CAPTURE(batch);
    ctx.budget.batch_size = batch;
    auto padded = ordo::prune::importance(m.lm(), ctx);
    for (std::size_t i = 0; i < 2; ++i) {
      CHECK(max_diff(padded[i].activation, alone[i].activation) < 1e-6 * alone[i].activation.max().item<double>());
      CHECK(max_diff(padded[i].combined, alone[i].combined) < 1e-6);
    }
  }
  // Control: averaging over the padded positions too (the defect) gives other values.
  std::vector<ordo::prune::detail::layer_stats> sums;
  for (auto w : m.config().intermediate_sizes) sums.emplace_back(w);
  std::int64_t longest = 0;
  for (const auto& e : ctx.calibration)
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(e.ids.size()));
  auto ids = torch::zeros({7, longest}, torch::kLong);
  for (int e = 0; e < 7; ++e)
    ids[e]
        .slice(0, 0, static_cast<std::int64_t>(ctx.calibration[e].ids.size()))
        .copy_(torch::tensor(ctx.calibration[e].ids, torch::kLong));
  ordo::prune::detail::forward_collecting(m.lm(), ids, torch::ones_like(ids), sums);
  CHECK(max_diff(sums[0].gate_abs / static_cast<double>(7 * longest), alone[0].activation) >
        1e-3 * alone[0].activation.max().item<double>());
}

TEST_CASE("invalid run-time inputs are clear errors") {
  auto m = tiny();
  auto ctx = context_for(m);
  using E = std::invalid_argument;
  SUBCASE("no calibration data") {
    ctx.calibration.clear();
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx), doctest::Contains("no calibration data"), E);
  }
  SUBCASE("budgets <= 0") {
    ctx.budget.calibration_samples = 0;
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx),
                         doctest::Contains("calibration_samples must be positive"), E);
    ctx.budget.calibration_samples = -4;
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx),
                         doctest::Contains("calibration_samples must be positive"), E);
    ctx.budget.calibration_samples = 4;
    ctx.budget.batch_size = 0;
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx), doctest::Contains("batch_size must be positive"),
                         E);
  }
  SUBCASE("ratios outside (0, 1) or of the wrong count") {
    for (double r : {0.0, 1.0, -0.2, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
      CAPTURE(r);
      CHECK_THROWS_WITH_AS(ordo::prune::prune_ffn(m, {0.3, r}, ctx), doctest::Contains("must lie in (0, 1)"), E);
    }
    CHECK_THROWS_WITH_AS(ordo::prune::prune_ffn(m, {0.3}, ctx), doctest::Contains("1 ratios for a model of 2 layers"),
                         E);
  }
  SUBCASE("a weight share outside [0, 1]") {
    for (double share : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
      CAPTURE(share);
      ordo::prune::Options o;
      o.weight_share = share;
      CHECK_THROWS_WITH_AS(ordo::prune::prune_ffn(m, {0.3, 0.3}, ctx, o), doctest::Contains("weight_share"), E);
    }
  }
  SUBCASE("bad calibration examples") {
    ctx.calibration[2].ids.clear();
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx),
                         doctest::Contains("calibration example 2 has no tokens"), E);
    ctx.calibration[2].ids = {5, 96};
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx), doctest::Contains("token id 96"), E);
  }
  SUBCASE("kept indices that are not increasing") {
    auto keep = std::vector<torch::Tensor>{torch::tensor({3, 1}, torch::kLong), torch::tensor({0}, torch::kLong)};
    CHECK_THROWS_WITH_AS(ordo::prune::slice_ffn(m.lm(), keep), doctest::Contains("increasing indices"), E);
  }
}

TEST_CASE("per-layer ratios, and the saved config and weights reload") {
  auto m = tiny();
  auto ctx = context_for(m);
  auto uniform = ordo::apply_stage(ordo::Prune<30>{}, m, ctx);
  auto j = uniform.config().to_json();
  REQUIRE(j["intermediate_size"].is_number_integer());  // what transformers expects
  CHECK(j["intermediate_size"].get<std::int64_t>() == 68);

  auto mixed = ordo::prune::prune_ffn(m, {0.3, 0.5}, ctx);
  CHECK(mixed.config().intermediate_sizes == std::vector<std::int64_t>{68, 48});
  auto jm = mixed.config().to_json();
  REQUIRE(jm["intermediate_size"].is_array());
  CHECK(jm["intermediate_size"].get<std::vector<std::int64_t>>() == std::vector<std::int64_t>{68, 48});

  const auto dir = fs::temp_directory_path() / ("ordo_prune_test_" + std::to_string(::getpid()));
  for (auto* model : {&uniform, &mixed}) {
    fs::remove_all(dir);
    save_hf(model->lm(), dir);
    auto back = ordo::model::load_hf(dir);
    CHECK(back->config().intermediate_sizes == model->config().intermediate_sizes);
    CHECK(max_diff(back->forward(ids_batch()), model->logits(ids_batch())) == 0.0);
  }
  fs::remove_all(dir);
}

TEST_CASE("progress is reported from 0 to 1") {
  auto m = tiny();
  auto ctx = context_for(m);
  std::vector<double> fractions;
  ctx.progress = [&](const std::string& what, double f, const std::string&) {
    CHECK(what == "Prune<30>");
    fractions.push_back(f);
  };
  auto pruned = ordo::apply_stage(ordo::Prune<30>{}, m, ctx);
  REQUIRE(fractions.size() >= 2);
  CHECK(fractions.front() == 0.0);
  CHECK(fractions.back() == 1.0);
  CHECK(std::is_sorted(fractions.begin(), fractions.end()));
}

// A context whose calibration set is a fixture's calibration_ids (each row cut to its
// calibration_lengths entry), without recovery.
ordo::Context context_from_fixture(ordo::io::safetensors::Checkpoint& ck, std::int64_t batch_size) {
  auto calib = ordo::model::read_tensor(ck, "calibration_ids");
  auto lengths = ordo::model::read_tensor(ck, "calibration_lengths");
  ordo::Context ctx;
  ctx.budget.prune_recovery = false;
  ctx.budget.calibration_samples = calib.size(0);
  ctx.budget.batch_size = batch_size;
  for (std::int64_t e = 0; e < calib.size(0); ++e) {
    auto row = calib[e].slice(0, 0, lengths[e].item<std::int64_t>()).contiguous();
    ordo::Example ex;
    ex.ids.assign(row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel());
    ex.labels = ex.ids;
    ctx.calibration.push_back(ex);
  }
  return ctx;
}

// tests/stages/make_prune_fixtures.py: the calibration ids, the neurons an independent PyTorch
// implementation of the importance keeps, and the logits transformers computes for the pruned
// model ordo saved (config.json + model.safetensors). With ORDO_PRUNE_EXPORT=<dir> set, this
// case writes <dir>/<fixture>/ for the script instead of checking.
TEST_CASE("against transformers: same kept neurons, and transformers loads the pruned model with equal logits") {
  for (const char* which : {"llama3", "qwen2"}) {
    const std::string name = which;
    CAPTURE(name);
    const auto file = fs::path(ORDO_STAGES_FIXTURES) / (std::string(which) + ".safetensors");
    REQUIRE(fs::exists(file));
    ordo::io::safetensors::Checkpoint ck(file);
    auto m = tiny(which);
    auto ctx = context_from_fixture(ck, 4);
    ordo::prune::report details;
    auto lm = ordo::prune::prune_ffn(m.lm(), {0.3, 0.3}, ctx, &details);
    if (const char* out = std::getenv("ORDO_PRUNE_EXPORT")) {
      save_hf(lm, fs::path(out) / which);
      continue;
    }
    for (std::size_t i = 0; i < 2; ++i) {
      CAPTURE(i);
      auto kept = ordo::model::read_tensor(ck, "kept_" + std::to_string(i));
      CHECK(torch::equal(details.kept[i], kept));
      auto weight = ordo::model::read_tensor(ck, "weight_" + std::to_string(i));
      auto activation = ordo::model::read_tensor(ck, "activation_" + std::to_string(i));
      CHECK(max_diff(details.scores[i].weight, weight) < 1e-9 * weight.max().item<double>());
      CHECK(max_diff(details.scores[i].activation, activation) < 1e-5 * activation.max().item<double>());
    }
    auto ids = ordo::model::read_tensor(ck, "input_ids");
    auto logits = ordo::model::read_tensor(ck, "logits");
    torch::NoGradGuard no_grad;
    const auto err = max_diff(lm->forward(ids), logits);
    MESSAGE(name << ": max |ordo - transformers| logit difference of the pruned model: " << err);
    CHECK(err < 1e-4);
  }
}

namespace {
// Mean next-token cross-entropy of `m` over the examples' scored labels.
double mean_loss(const ordo::DenseModel& m, const std::vector<ordo::Example>& examples) {
  double sum = 0, count = 0;
  for (const auto& e : examples) {
    auto ids = torch::tensor(e.ids, torch::kLong).unsqueeze(0);
    auto labels = torch::tensor(e.labels, torch::kLong);
    auto logits = m.logits(ids)[0].slice(0, 0, -1);
    auto target = labels.slice(0, 1);
    sum +=
        torch::nn::functional::cross_entropy(
            logits, target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100))
            .item<double>();
    count += (target != -100).sum().item<double>();
  }
  return sum / count;
}
}  // namespace

TEST_CASE("the recovery fine-tune trains the pruned model on context.train within the budget") {
  auto m = tiny();
  auto ctx = context_for(m);
  ctx.train = calibration(m.config().vocab_size, 8, 5);
  ctx.budget.train_samples = 6;  // of 8
  ctx.budget.batch_size = 2;
  ctx.budget.epochs = 3;
  ctx.budget.prune_learning_rate = 1e-2;
  ctx.budget.warmup_fraction = 0.0;
  std::map<std::string, int> reports;
  ctx.progress = [&](const std::string& what, double, const std::string&) { ++reports[what]; };
  auto before = ordo::model::clone(m.lm());
  ctx.budget.prune_recovery = false;
  auto plain = ordo::apply_stage(ordo::Prune<30>{}, m, ctx);
  CHECK(reports.count("Prune<30> recovery") == 0);
  ctx.budget.prune_recovery = true;
  auto recovered = ordo::apply_stage(ordo::Prune<30>{}, m, ctx);
  CHECK(reports["Prune<30> recovery"] == 3 * 3);  // 3 epochs of ceil(6 / 2) steps
  CHECK(recovered.config().intermediate_sizes == plain.config().intermediate_sizes);
  const std::vector<ordo::Example> used(ctx.train.begin(), ctx.train.begin() + 6);
  const double loss_plain = mean_loss(plain, used), loss_recovered = mean_loss(recovered, used);
  MESSAGE("loss on the recovery examples: " << loss_plain << " pruned, " << loss_recovered << " after recovery");
  CHECK(loss_recovered < loss_plain - 0.1);
  // The input model is untouched; the same run again gives the same weights.
  auto orig = before->named_parameters();
  for (const auto& p : m.lm()->named_parameters()) CHECK(torch::equal(p.value(), orig[p.key()]));
  auto again = ordo::apply_stage(ordo::Prune<30>{}, m, ctx);
  CHECK(torch::equal(again.logits(ids_batch()), recovered.logits(ids_batch())));
}

TEST_CASE("recovery: invalid inputs are clear errors before any work") {
  auto m = tiny();
  auto ctx = context_for(m);
  ctx.budget.prune_recovery = true;
  int reports = 0;
  ctx.progress = [&](const std::string&, double, const std::string&) { ++reports; };
  using E = std::invalid_argument;
  SUBCASE("no training examples") {
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx),
                         doctest::Contains("prune_recovery is on but context.train is empty"), E);
  }
  SUBCASE("budgets") {
    ctx.train = calibration(m.config().vocab_size, 4, 5);
    ctx.budget.train_samples = 0;
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx),
                         doctest::Contains("train_samples must be positive"), E);
    ctx.budget.train_samples = 4;
    ctx.budget.prune_learning_rate = 0.0;
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx),
                         doctest::Contains("learning_rate must be positive"), E);
    ctx.budget.prune_learning_rate = 5e-5;
    ctx.budget.epochs = 0;
    CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30>{}, m, ctx), doctest::Contains("epochs must be at least 1"),
                         E);
  }
  CHECK(reports == 0);
}

// ---- importance policies, allocation, bias compensation, recovery by distillation ------------

// tests/stages/make_flap_fixture.py: calibration ids, the neurons an independent PyTorch FLAP
// keeps, and the logits transformers computes for the FLAP-pruned model ordo saved (with
// mlp_bias and the compensation in down_proj's bias). With ORDO_PRUNE_EXPORT=<dir> set, this
// case writes <dir>/llama3_flap/ for the script instead of checking.
TEST_CASE("FLAP against transformers: same kept neurons, and transformers loads the compensated model") {
  const auto file = fs::path(ORDO_STAGES_FIXTURES) / "llama3_flap.safetensors";
  REQUIRE(fs::exists(file));
  ordo::io::safetensors::Checkpoint ck(file);
  auto m = tiny("llama3");
  auto ctx = context_from_fixture(ck, 3);
  ordo::prune::Options options;
  options.importance = ordo::prune::importance_kind::flap;
  ordo::prune::report details;
  auto lm = ordo::prune::prune_ffn(m.lm(), {0.3, 0.3}, ctx, &details, options);
  if (const char* out = std::getenv("ORDO_PRUNE_EXPORT")) {
    save_hf(lm, fs::path(out) / "llama3_flap");
    return;
  }
  for (std::size_t i = 0; i < 2; ++i) CHECK(torch::equal(details.kept[i], ordo::model::read_tensor(ck, "kept_" + std::to_string(i))));
  torch::NoGradGuard no_grad;
  const auto err = max_diff(lm->forward(ordo::model::read_tensor(ck, "input_ids")), ordo::model::read_tensor(ck, "logits"));
  MESSAGE("max |ordo - transformers| logit difference of the FLAP-pruned model: " << err);
  CHECK(err < 1e-4);
}

namespace {

// The inputs X of each layer's down_proj, computed here from the modules themselves, example by
// example (no padding): with o_proj zero in every layer, layer l's residual stream is the
// embedding plus the MLP outputs of the layers before it.
std::vector<std::vector<torch::Tensor>> down_inputs(ordo::DenseModel& m, const std::vector<ordo::Example>& examples) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<torch::Tensor>> out;  // [example][layer] -> [tokens, width]
  for (const auto& e : examples) {
    auto x = m.lm()->model->embed_tokens(torch::tensor(e.ids, torch::kLong));
    std::vector<torch::Tensor> per_layer;
    for (std::size_t i = 0; i < m.lm()->model->layers->size(); ++i) {
      auto& l = layer(m.lm(), i);
      auto h = l.post_attention_layernorm(x);
      auto X = torch::silu(l.mlp->gate_proj(h)) * l.mlp->up_proj(h);
      per_layer.push_back(X.to(torch::kFloat64));
      x = x + l.mlp->down_proj(X);
    }
    out.push_back(per_layer);
  }
  return out;
}

ordo::prune::Options policy(ordo::prune::importance_kind k,
                            ordo::prune::allocation_kind a = ordo::prune::allocation_kind::uniform) {
  ordo::prune::Options o;
  o.importance = k;
  o.allocation = a;
  return o;
}

}  // namespace

TEST_CASE("every importance policy equals an independent computation") {
  using K = ordo::prune::importance_kind;
  auto m = tiny();
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < 2; ++i) layer(m.lm(), i).self_attn->o_proj->weight.zero_();
  }
  auto ctx = context_for(m);  // 7 examples of unequal lengths in padded batches of 3
  const auto X = down_inputs(m, ctx.calibration);
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    std::vector<torch::Tensor> rows, seq_means;
    for (const auto& e : X) {
      rows.push_back(e[i]);
      seq_means.push_back(e[i].abs().mean(0));
    }
    const auto all = torch::cat(rows, 0);                                       // [tokens, width]
    const auto down = layer(m.lm(), i).mlp->down_proj->weight.detach().to(torch::kFloat64);  // [hidden, width]
    const auto expected_activation = torch::stack(seq_means, 0).square().sum(0).sqrt();
    const auto expected_wanda = down.abs().sum(0) * all.square().sum(0).sqrt();
    const auto expected_flap = all.var(0, /*unbiased=*/false) * down.square().sum(0);
    const auto expected_mean = all.mean(0);
    auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
      return max_diff(a, b) / b.abs().max().item<double>();
    };
    CHECK(rel(ordo::prune::importance(m.lm(), ctx, policy(K::activation))[i].combined, expected_activation) < 1e-5);
    CHECK(rel(ordo::prune::importance(m.lm(), ctx, policy(K::wanda))[i].combined, expected_wanda) < 1e-5);
    const auto flap = ordo::prune::importance(m.lm(), ctx, policy(K::flap));
    CHECK(rel(flap[i].combined, expected_flap) < 1e-4);
    CHECK(rel(flap[i].input_mean, expected_mean) < 1e-5);
  }
  // Taylor: |w * dL/dw| summed per neuron, L the summed next-token cross-entropy, here from a
  // clone with autograd, one unpadded example at a time.
  auto copy = ordo::model::clone(m.lm());
  for (auto& p : copy->parameters()) p.set_requires_grad(true);
  for (const auto& e : ctx.calibration) {
    auto ids = torch::tensor(e.ids, torch::kLong).unsqueeze(0);
    auto logits = copy->forward(ids)[0];
    torch::nn::functional::cross_entropy(logits.slice(0, 0, -1), ids[0].slice(0, 1),
                                         torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
        .backward();
  }
  const auto taylor = ordo::prune::importance(m.lm(), ctx, policy(K::taylor));
  for (std::size_t i = 0; i < 2; ++i) {
    auto& mlp = *copy->model->layers->ptr<DecoderLayerImpl>(i)->mlp;
    auto term = [](const torch::Tensor& w) { return (w.detach() * w.grad()).to(torch::kFloat64).abs(); };
    auto expected = term(mlp.gate_proj->weight).sum(1) + term(mlp.up_proj->weight).sum(1) +
                    term(mlp.down_proj->weight).sum(0);
    CHECK(max_diff(taylor[i].combined, expected) < 1e-4 * expected.max().item<double>());
  }
  // The model's flags and gradients are as they were.
  for (const auto& p : m.lm()->parameters()) {
    CHECK_FALSE(p.grad().defined());
  }
  // Each policy ranks neurons differently (they are not one score under other names).
  const auto a = ordo::prune::select_kept(ordo::prune::importance(m.lm(), ctx, policy(K::activation)), {0.3, 0.3});
  const auto f = ordo::prune::select_kept(ordo::prune::importance(m.lm(), ctx, policy(K::flap)), {0.3, 0.3});
  CHECK_FALSE(torch::equal(a[0], f[0]));
}

TEST_CASE("every policy is independent of how the calibration examples are batched") {
  using K = ordo::prune::importance_kind;
  auto m = tiny("qwen2");
  auto ctx = context_for(m);
  for (auto k : {K::activation, K::wanda, K::flap, K::taylor}) {
    CAPTURE(std::string(ordo::prune::name(k)));
    ctx.budget.batch_size = 1;
    const auto alone = ordo::prune::importance(m.lm(), ctx, policy(k));
    ctx.budget.batch_size = 4;
    const auto padded = ordo::prune::importance(m.lm(), ctx, policy(k));
    for (std::size_t i = 0; i < 2; ++i)
      CHECK(max_diff(padded[i].combined, alone[i].combined) < 1e-5 * alone[i].combined.abs().max().item<double>());
  }
}

TEST_CASE("global allocation: standardized scores ranked across layers, within the per-layer cap") {
  torch::manual_seed(11);
  std::vector<ordo::prune::layer_importance> scores(3);
  const std::int64_t widths[] = {10, 20, 16};
  for (std::size_t l = 0; l < 3; ++l)  // other scales and offsets per layer: only standardized scores compare
    scores[l].combined = torch::rand({widths[l]}, torch::kFloat64) * (l + 1.0) + 0.5 * static_cast<double>(l);
  scores[1].combined.slice(0, 0, 8).fill_(-100.0);  // a cluster of low scores: the cap must stop it
  const std::vector<double> ratios(3, 0.3);
  const double cap_ratio = 0.35;  // caps: floor(3.5) = 3, 7, floor(5.6) = 5
  const auto keep = ordo::prune::select_kept_global(scores, ratios, cap_ratio);
  // The expectation, by brute force: every neuron's standardized score, lowest first, removed
  // unless its layer is at its cap, until 3 + 6 + 4 (what uniform would remove) are gone.
  std::vector<std::tuple<double, std::size_t, std::int64_t>> z;
  for (std::size_t l = 0; l < 3; ++l) {
    auto c = scores[l].combined;
    auto s = (c - c.mean()) / c.std(/*unbiased=*/false);
    for (std::int64_t j = 0; j < widths[l]; ++j) z.emplace_back(s[j].item<double>(), l, -j);  // ties: later index first
  }
  std::sort(z.begin(), z.end());
  const std::int64_t caps[] = {3, 7, 5};
  std::int64_t taken[] = {0, 0, 0}, total = 0;
  std::set<std::pair<std::size_t, std::int64_t>> gone;
  for (const auto& [value, l, minus_j] : z) {
    if (total == 13) break;
    if (taken[l] == caps[l]) continue;
    gone.insert({l, -minus_j});
    ++taken[l];
    ++total;
  }
  CHECK(taken[1] == 7);  // the cap binds in this draw
  for (std::size_t l = 0; l < 3; ++l) {
    CAPTURE(l);
    std::set<std::int64_t> kept(keep[l].data_ptr<std::int64_t>(), keep[l].data_ptr<std::int64_t>() + keep[l].size(0));
    CHECK(static_cast<std::int64_t>(kept.size()) == widths[l] - taken[l]);
    for (std::int64_t j = 0; j < widths[l]; ++j) CHECK(kept.count(j) == (gone.count({l, j}) ? 0u : 1u));
  }
  // Default cap min(2 * 0.3, 0.9): 12 of layer 1's 20 may go (the 8 of the cluster, here).
  const auto wide = ordo::prune::select_kept_global(scores, ratios);
  CHECK(wide[1].size(0) >= 20 - 12);
  std::int64_t removed = 0;
  for (std::size_t l = 0; l < 3; ++l) removed += widths[l] - wide[l].size(0);
  CHECK(removed == 13);
  // Clear errors for a cap outside (0, 1) or below the ratio.
  CHECK_THROWS_WITH_AS(ordo::prune::select_kept_global(scores, ratios, 1.5), doctest::Contains("max_layer_ratio"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ordo::prune::select_kept_global(scores, ratios, 0.2),
                       doctest::Contains("at least the largest ratio"), std::invalid_argument);
}

TEST_CASE("FLAP's bias compensation: removing constant neurons leaves the outputs unchanged") {
  // A Llama decoder with MLP biases in which 28 neurons of each layer output a constant
  // (gate and up rows zero, biases 1 and 2: X = silu(1) * 2 whatever the input). FLAP's
  // fluctuation of those is 0, so 30 % pruning removes exactly them; the compensation puts their
  // constant contribution into down_proj's bias and the logits do not change.
  auto plain = tiny();
  auto config = plain.config();
  config.mlp_bias = true;
  ordo::model::CausalLM lm(config);
  {
    torch::NoGradGuard no_grad;
    auto from = plain.lm()->named_parameters();
    for (auto& p : lm->named_parameters()) {
      if (const auto* v = from.find(p.key()))
        p.value().copy_(*v);
      else
        p.value().normal_(0.0, 0.05);  // the MLP biases: not zero, so that they must be carried
    }
    for (std::size_t i = 0; i < 2; ++i) {
      auto& mlp = *lm->model->layers->ptr<DecoderLayerImpl>(i)->mlp;
      auto constant = torch::arange(3 * static_cast<std::int64_t>(i), 3 * static_cast<std::int64_t>(i) + 84, 3);
      mlp.gate_proj->weight.index_fill_(0, constant, 0.0);
      mlp.up_proj->weight.index_fill_(0, constant, 0.0);
      mlp.gate_proj->bias.index_fill_(0, constant, 1.0);
      mlp.up_proj->bias.index_fill_(0, constant, 2.0);
    }
  }
  ordo::DenseModel m(lm, nullptr, std::nullopt, ORDO_MODEL_FIXTURES);
  auto ctx = context_for(m);
  auto ids = ids_batch();
  const auto reference = m.logits(ids);
  auto pruned = ordo::apply_stage(ordo::Prune<30, ordo::importance::flap>{}, m, ctx);
  CHECK(pruned.config().intermediate_sizes == std::vector<std::int64_t>{68, 68});
  CHECK(pruned.config().mlp_bias);
  MESSAGE("max |logit change| with compensation: " << max_diff(pruned.logits(ids), reference));
  CHECK(max_diff(pruned.logits(ids), reference) < 1e-5);
  // Control: the same neurons removed without compensation change the logits.
  auto options = policy(ordo::prune::importance_kind::flap);
  options.compensate = false;
  auto bare = ordo::prune::prune_ffn(m.lm(), {0.3, 0.3}, ctx, nullptr, options);
  CHECK(max_diff(bare->forward(ids), reference) > 1e-3);
  // Saved and loaded back (Hugging Face layout, mlp_bias in config.json): the same logits.
  const auto dir = fs::temp_directory_path() / ("ordo-flap-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  save_hf(pruned.lm(), dir);
  auto back = ordo::model::load_hf(dir);
  CHECK(back->config().mlp_bias);
  CHECK(max_diff(back->forward(ids), pruned.logits(ids)) < 1e-6);
  fs::remove_all(dir);
  // A Qwen2 model cannot carry the bias: a clear error before any work.
  auto qwen = tiny("qwen2");
  auto qctx = context_for(qwen);
  CHECK_THROWS_WITH_AS(ordo::apply_stage(ordo::Prune<30, ordo::importance::flap>{}, qwen, qctx),
                       doctest::Contains("only Llama models carry"), std::invalid_argument);
}

TEST_CASE("the stage's type carries its policies: names, description, the options it runs with") {
  using P = ordo::Prune<30, ordo::importance::wanda, ordo::allocation::global>;
  static_assert(P::symbol == "P[wanda,global]");
  static_assert(ordo::Pipeline<ordo::Prune<30, ordo::importance::flap>, ordo::QuantNF4>::name() == "P[flap]-Q");
  CHECK(P::describe() == "Prune<30, wanda, global>");
  ordo::Context ctx;
  const auto o = ordo::prune::options_for<P::importance_type, P::allocation_type>("x", ctx);
  CHECK(o.importance == ordo::prune::importance_kind::wanda);
  CHECK(o.allocation == ordo::prune::allocation_kind::global);
  CHECK_FALSE(o.compensates());
  CHECK(ordo::prune::options_for<ordo::importance::flap, ordo::allocation::uniform>("x", ctx).compensates());
  for (auto k : ordo::prune::importance_kinds) CHECK(ordo::prune::parse_importance(ordo::prune::name(k)) == k);
  CHECK_THROWS_WITH_AS(ordo::prune::parse_importance("magnitude"), doctest::Contains("unknown pruning importance"),
                       std::invalid_argument);
  // Global allocation through the stage: widths differ per layer, the total is uniform's.
  auto m = tiny();
  auto c = context_for(m);
  auto pruned = ordo::apply_stage(ordo::Prune<30, ordo::importance::activation, ordo::allocation::global>{}, m, c);
  const auto& w = pruned.config().intermediate_sizes;
  CHECK(w[0] + w[1] == 68 + 68);
}

TEST_CASE("recovery by distillation from the unpruned model brings the pruned model closer to it") {
  auto m = tiny();
  auto ctx = context_for(m);
  ctx.train = calibration(m.config().vocab_size, 8, 5);
  ctx.budget.train_samples = 8;
  ctx.budget.batch_size = 2;
  ctx.budget.epochs = 6;
  ctx.budget.prune_learning_rate = 3e-4;  // the random teacher is near uniform: small steps
  ctx.budget.warmup_fraction = 0.0;
  ctx.budget.prune_recovery = false;
  auto plain = ordo::apply_stage(ordo::Prune<30, ordo::importance::activation>{}, m, ctx);
  ctx.budget.prune_recovery = true;
  ctx.budget.prune_recovery_loss = ordo::recovery_loss::distillation;
  auto recovered = ordo::apply_stage(ordo::Prune<30, ordo::importance::activation>{}, m, ctx);
  auto kl_to_base = [&](ordo::DenseModel& s) {
    double sum = 0;
    for (const auto& e : ctx.train) {
      auto ids = torch::tensor(e.ids, torch::kLong).unsqueeze(0);
      auto log_t = torch::log_softmax(m.logits(ids), -1), log_s = torch::log_softmax(s.logits(ids), -1);
      sum += (log_t.exp() * (log_t - log_s)).sum().item<double>();
    }
    return sum;
  };
  const double before = kl_to_base(plain), after = kl_to_base(recovered);
  MESSAGE("KL(unpruned || pruned) on the training examples: " << before << " before, " << after << " after recovery");
  CHECK(after < 0.7 * before);
}

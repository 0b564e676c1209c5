// ordo/stages/prune.hpp — the P stage at run time: structured pruning of the FFN (SwiGLU MLP)
// neurons of every decoder layer.
//
//   apply(Prune<Percent>, const DenseModel&, Context&) -> DenseModel
//       removes the least important Percent % of the intermediate neurons of each layer (the
//       paper: 30 %), then optionally fine-tunes to recover (context.budget.prune_recovery).
//   prune::prune_ffn(const DenseModel&, std::vector<double> ratios, Context&) -> DenseModel
//       the same with a ratio per layer (beyond the paper: non-uniform pruning).
//
// Importance of neuron i of a layer (the paper, section 2.1.2):
//   weight_i     = sum_j |W_gate[i, j]| + sum_j |W_up[i, j]|
//   activation_i = mean |gate_proj(x)_i| (before SiLU) over the real tokens of the calibration
//                  examples: padding added to batch examples of unequal length is not counted
//                  (the paper's script averages over padded positions too; ordo does not)
//   combined_i   = 0.5 * weight_i / max_l(weight) + 0.5 * activation_i / max_l(activation)
//                  (prune::Options::weight_share, beyond the paper, changes the 0.5 : 0.5 mix)
// (a layer whose maximum is 0 contributes 0 for that term). Per layer, floor(width * ratio)
// neurons with the lowest combined score are removed (ties: the later index goes first), which
// is the paper's count: Qwen2.5-3B's 11008 neurons keep 11008 - floor(3302.4) = 7706 at 30 %.
// The kept neurons keep their original order: rows of gate_proj and up_proj and columns of
// down_proj are sliced, nothing else changes, and the new per-layer widths are recorded in the
// config (decoder_config::to_json writes one integer when all layers are equal, a list
// otherwise).
//
// Calibration: the first min(budget.calibration_samples, calibration.size()) examples of
// context.calibration, in batches of budget.batch_size, right-padded; one forward pass without
// gradients. Each Example's ids are all real tokens (its labels play no part here).
//
// Recovery (context.budget.prune_recovery): next-token cross-entropy fine-tuning of the pruned
// model with ordo::train::fine_tune on the first min(budget.train_samples, train.size())
// examples of context.train, at budget.prune_learning_rate (the paper: 2 epochs at 5e-5) with
// the budget's epochs, batch size, accumulation, warmup, weight decay and clipping; seeded by
// context.seed; checkpoints in context.work_dir when it is set.
#pragma once

#include <algorithm>  // std::min, std::max
#include <cmath>      // std::floor, std::llround, std::isfinite
#include <cstdint>    // std::int64_t
#include <limits>     // std::numeric_limits
#include <map>        // std::map
#include <stdexcept>  // std::invalid_argument, std::runtime_error
#include <string>     // std::string, std::to_string
#include <vector>     // std::vector

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>          // CausalLM, DecoderLayerImpl, detail::rope_inverse_frequencies
#include <ordo/pipeline/stages.hpp>        // Prune
#include <ordo/stages/context.hpp>         // Context, Example
#include <ordo/model/dense_model.hpp>      // DenseModel
#include <ordo/model/quantized_model.hpp>  // QuantizedModel
#include <ordo/train/trainer.hpp>          // fine_tune, TrainOptions

namespace ordo::prune {

/// Neurons a layer `width` wide keeps when `percent` % are removed: floor(width * percent / 100)
/// go (exact integer arithmetic). 11008 at 30 % keeps 7706, as in the paper.
constexpr std::int64_t kept_neurons(std::int64_t width, int percent) { return width - width * percent / 100; }

/// The same rule for a ratio in (0, 1): floor(width * ratio) removed, where a product within
/// 1e-9 (relative) of an integer counts as that integer, so that ratio 0.29 and percent 29 agree
/// for every width despite binary rounding (29 * 100 * 0.29 is 840.9999999999999).
inline std::int64_t kept_neurons(std::int64_t width, double ratio) {
  const double r = static_cast<double>(width) * ratio;
  const double nearest = static_cast<double>(std::llround(r));
  const double removed = std::abs(r - nearest) <= 1e-9 * std::max(1.0, std::abs(r)) ? nearest : std::floor(r);
  return width - static_cast<std::int64_t>(removed);
}

/// The importance scores of one layer's intermediate neurons, each [width], fp64.
struct layer_importance {
  torch::Tensor weight;      // sum|W_gate[i,:]| + sum|W_up[i,:]|
  torch::Tensor activation;  // mean |gate_proj output_i| over real calibration tokens
  torch::Tensor combined;    // 0.5 * weight / max + 0.5 * activation / max
};

/// Choices beyond the paper.
struct Options {
  /// Share of the weight term in the combined score; the activation term gets the rest. The
  /// paper: 0.5. On SmolLM2-135M (30 %, no recovery) the activation term alone ranks neurons far
  /// better than the paper's mix (docs/pruning.md).
  double weight_share = 0.5;
  std::string label = "Prune";  ///< names the work in progress lines and errors
};

namespace detail {

[[noreturn]] inline void fail(const std::string& what) { throw std::invalid_argument("ordo::Prune: " + what); }

inline void check_dense(model::CausalLM& lm) {
  for (std::size_t i = 0; i < lm->model->layers->size(); ++i) {
    auto& mlp = *lm->model->layers->ptr<model::DecoderLayerImpl>(i)->mlp;
    if (mlp.gate_proj->quantized() || mlp.up_proj->quantized() || mlp.down_proj->quantized())
      fail("layer " + std::to_string(i) + " has NF4 MLP weights; prune a dense model (Dequantize first)");
  }
}

/// One forward pass of `lm` that adds, per layer, sum over real tokens of |gate_proj output|
/// (fp64, [width]) into `sums` (sized and zeroed by the caller). Returns the logits, which equal
/// lm->forward(ids, mask): the computation is CausalLM::forward's, layer by layer (tested).
/// ids [B, T]; mask [B, T] of 1 (real) / 0 (padding).
inline torch::Tensor forward_collecting(model::CausalLM& lm, const torch::Tensor& ids, const torch::Tensor& mask,
                                        std::vector<torch::Tensor>& sums) {
  torch::NoGradGuard no_grad;
  const auto B = ids.size(0), T = ids.size(1);
  auto x = lm->model->embed_tokens(ids);
  const auto dtype = x.scalar_type();
  auto inv_freq = model::detail::rope_inverse_frequencies(lm->config()).to(x.device());
  auto positions = torch::arange(0, T, torch::TensorOptions().dtype(torch::kFloat32).device(x.device()));
  auto freqs = torch::outer(positions, inv_freq);
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos().to(dtype), sin = emb.sin().to(dtype);
  const float neg = -1e30f;
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
  auto q_pos = torch::arange(0, T, opts.dtype(torch::kLong)).unsqueeze(1);
  auto k_pos = torch::arange(0, T, opts.dtype(torch::kLong)).unsqueeze(0);
  auto bias = torch::zeros({T, T}, opts).masked_fill(k_pos > q_pos, neg);
  bias = bias.view({1, 1, T, T}).expand({B, 1, T, T});
  auto real = mask.to(x.device());
  bias = bias.masked_fill((real == 0).view({B, 1, 1, T}), neg);
  auto weight = real.to(torch::kFloat64).unsqueeze(-1);  // [B, T, 1]
  for (std::size_t i = 0; i < lm->model->layers->size(); ++i) {
    auto& layer = *lm->model->layers->ptr<model::DecoderLayerImpl>(i);
    x = x + layer.self_attn(layer.input_layernorm(x), cos, sin, bias, nullptr, nullptr);
    auto h = layer.post_attention_layernorm(x);
    auto gate = layer.mlp->gate_proj(h);
    sums[i] += (gate.to(torch::kFloat64).abs() * weight).sum(torch::IntArrayRef{0, 1});
    x = x + layer.mlp->down_proj(torch::silu(gate) * layer.mlp->up_proj(h));
  }
  x = lm->model->norm(x);
  auto w = lm->lm_head ? lm->lm_head->weight : lm->model->embed_tokens->weight;
  return torch::matmul(x, w.t()).to(torch::kFloat32);
}

/// x / max(x), or zeros when max(x) is 0.
inline torch::Tensor by_max(const torch::Tensor& x) {
  const double m = x.max().item<double>();
  return m > 0 ? x / m : torch::zeros_like(x);
}

}  // namespace detail

/// Importance of every intermediate neuron of every layer of `lm` (dense MLP weights), from the
/// calibration examples and budget of `context` (see the top of this file). Throws
/// std::invalid_argument for no calibration data, a budget <= 0, an empty example or a token id
/// outside the vocabulary.
inline std::vector<layer_importance> importance(const model::CausalLM& model, const Context& context,
                                                const Options& options = {}) {
  const auto& what = options.label;
  if (!(options.weight_share >= 0.0 && options.weight_share <= 1.0))
    detail::fail("options.weight_share is " + std::to_string(options.weight_share) + "; it must lie in [0, 1]");
  auto& lm = const_cast<model::CausalLM&>(model);  // read only: forward passes without gradients
  detail::check_dense(lm);
  const auto& budget = context.budget;
  if (context.calibration.empty()) detail::fail("no calibration data (context.calibration is empty)");
  if (budget.calibration_samples <= 0)
    detail::fail("budget.calibration_samples must be positive, not " + std::to_string(budget.calibration_samples));
  if (budget.batch_size <= 0)
    detail::fail("budget.batch_size must be positive, not " + std::to_string(budget.batch_size));
  const auto n = static_cast<std::size_t>(
      std::min<std::int64_t>(budget.calibration_samples, static_cast<std::int64_t>(context.calibration.size())));
  const auto vocab = lm->config().vocab_size;
  for (std::size_t e = 0; e < n; ++e) {
    const auto& ids = context.calibration[e].ids;
    if (ids.empty()) detail::fail("calibration example " + std::to_string(e) + " has no tokens");
    for (auto id : ids)
      if (id < 0 || id >= vocab)
        detail::fail("calibration example " + std::to_string(e) + " holds token id " + std::to_string(id) +
                     ", outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
  }

  torch::NoGradGuard no_grad;
  const auto device = lm->model->embed_tokens->weight.device();
  const auto layers = lm->model->layers->size();
  std::vector<torch::Tensor> sums(layers);
  for (std::size_t i = 0; i < layers; ++i)
    sums[i] = torch::zeros({lm->config().intermediate_sizes.at(i)}, torch::kFloat64).to(device);
  double tokens = 0;
  const auto batch = static_cast<std::size_t>(budget.batch_size);
  for (std::size_t first = 0; first < n; first += batch) {
    const auto last = std::min(n, first + batch);
    std::size_t longest = 0;
    for (auto e = first; e < last; ++e) longest = std::max(longest, context.calibration[e].ids.size());
    const auto B = static_cast<std::int64_t>(last - first), T = static_cast<std::int64_t>(longest);
    auto ids = torch::zeros({B, T}, torch::kLong);  // padding id 0: masked, never counted
    auto mask = torch::zeros({B, T}, torch::kLong);
    for (auto e = first; e < last; ++e) {
      const auto& ex = context.calibration[e].ids;
      const auto len = static_cast<std::int64_t>(ex.size());
      const auto row = static_cast<std::int64_t>(e - first);
      ids[row].slice(0, 0, len).copy_(torch::tensor(ex, torch::kLong));
      mask[row].slice(0, 0, len).fill_(1);
      tokens += static_cast<double>(len);
    }
    detail::forward_collecting(lm, ids.to(device), mask.to(device), sums);
    context.report(what, 0.9 * static_cast<double>(last) / static_cast<double>(n),
                   "importance: " + std::to_string(last) + "/" + std::to_string(n) + " calibration examples");
  }

  std::vector<layer_importance> out(layers);
  for (std::size_t i = 0; i < layers; ++i) {
    auto& mlp = *lm->model->layers->ptr<model::DecoderLayerImpl>(i)->mlp;
    auto& s = out[i];
    s.weight = (mlp.gate_proj->weight.detach().to(torch::kFloat64).abs().sum(1) +
                mlp.up_proj->weight.detach().to(torch::kFloat64).abs().sum(1))
                   .cpu();
    s.activation = (sums[i] / tokens).cpu();
    if (!torch::isfinite(s.weight).all().item<bool>() || !torch::isfinite(s.activation).all().item<bool>())
      throw std::runtime_error("ordo::" + what + ": layer " + std::to_string(i) +
                               " has non-finite weights or activations; cannot rank its neurons");
    s.combined =
        options.weight_share * detail::by_max(s.weight) + (1.0 - options.weight_share) * detail::by_max(s.activation);
  }
  return out;
}

/// The neurons each layer keeps: the highest `kept_neurons(width, ratios[l])` combined scores
/// (ties: the lower index is kept), as sorted int64 indices. ratios: one per layer, in (0, 1).
inline std::vector<torch::Tensor> select_kept(const std::vector<layer_importance>& scores,
                                              const std::vector<double>& ratios) {
  if (ratios.size() != scores.size())
    detail::fail(std::to_string(ratios.size()) + " ratios for " + std::to_string(scores.size()) + " layers");
  std::vector<torch::Tensor> keep;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const double r = ratios[i];
    if (!(r > 0.0 && r < 1.0))
      detail::fail("the ratio of layer " + std::to_string(i) + " is " + std::to_string(r) +
                   "; a ratio is the share of neurons removed and must lie in (0, 1)");
    const auto& c = scores[i].combined;
    const auto k = kept_neurons(c.size(0), r);
    auto order = std::get<1>(torch::sort(c, /*stable=*/true, /*dim=*/0, /*descending=*/true));
    keep.push_back(std::get<0>(torch::sort(order.slice(0, 0, k))));
  }
  return keep;
}

/// A new CausalLM holding exactly `lm`'s weights, except that layer l's MLP keeps only the
/// neurons `keep[l]` (sorted, distinct int64 indices): rows of gate_proj/up_proj, columns of
/// down_proj. The config's intermediate_sizes become the kept counts; dtype, requires_grad and
/// the training flag are kept.
inline model::CausalLM slice_ffn(const model::CausalLM& source, const std::vector<torch::Tensor>& keep) {
  auto& src = const_cast<model::CausalLM&>(source);
  detail::check_dense(src);
  auto config = src->config();
  if (keep.size() != static_cast<std::size_t>(config.num_layers))
    detail::fail("kept neurons given for " + std::to_string(keep.size()) + " layers, the model has " +
                 std::to_string(config.num_layers));
  std::map<std::string, std::pair<torch::Tensor, int>> sliced;  // parameter -> (indices, dim)
  for (std::size_t i = 0; i < keep.size(); ++i) {
    const auto width = config.intermediate_sizes[i];
    const auto& k = keep[i];
    if (!k.defined() || k.dim() != 1 || k.scalar_type() != torch::kLong || k.size(0) < 1)
      detail::fail("kept neurons of layer " + std::to_string(i) + " must be a non-empty 1-D int64 tensor");
    auto kc = k.cpu();
    if (kc.min().item<std::int64_t>() < 0 || kc.max().item<std::int64_t>() >= width ||
        (kc.size(0) > 1 && !(kc.slice(0, 1) > kc.slice(0, 0, -1)).all().item<bool>()))
      detail::fail("kept neurons of layer " + std::to_string(i) + " must be increasing indices in [0, " +
                   std::to_string(width) + ")");
    config.intermediate_sizes[i] = kc.size(0);
    const std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    sliced[p + "gate_proj.weight"] = {kc, 0};
    sliced[p + "up_proj.weight"] = {kc, 0};
    sliced[p + "down_proj.weight"] = {kc, 1};
  }
  torch::NoGradGuard no_grad;
  model::CausalLM out(config, model::build_options(model::placement(src->device(), src->dtype()), /*draw=*/false));
  auto from = src->named_parameters();
  for (auto& p : out->named_parameters()) {
    const auto& value = from[p.key()];
    torch::Tensor t;
    if (auto it = sliced.find(p.key()); it != sliced.end())
      t = value.detach().index_select(it->second.second, it->second.first.to(value.device())).contiguous();
    else
      t = value.detach().clone();
    p.value().set_data(t);
    p.value().set_requires_grad(value.requires_grad());
  }
  out->train(src->is_training());
  return out;
}

/// What prune_ffn did, per layer.
struct report {
  std::vector<std::int64_t> widths_before, widths_after;
  std::vector<layer_importance> scores;
  std::vector<torch::Tensor> kept;  // indices of the kept neurons
};

/// Importance, selection and slicing of `lm` with a ratio per layer (no recovery fine-tune).
inline model::CausalLM prune_ffn(const model::CausalLM& lm, const std::vector<double>& ratios, const Context& context,
                                 report* details = nullptr, const Options& options = {}) {
  if (ratios.size() != static_cast<std::size_t>(lm->config().num_layers))
    detail::fail(std::to_string(ratios.size()) + " ratios for a model of " + std::to_string(lm->config().num_layers) +
                 " layers");
  for (std::size_t i = 0; i < ratios.size(); ++i)
    if (!(ratios[i] > 0.0 && ratios[i] < 1.0))
      detail::fail("the ratio of layer " + std::to_string(i) + " is " + std::to_string(ratios[i]) +
                   "; a ratio is the share of neurons removed and must lie in (0, 1)");
  auto scores = importance(lm, context, options);
  auto kept = select_kept(scores, ratios);
  auto out = slice_ffn(lm, kept);
  if (details) {
    details->widths_before = lm->config().intermediate_sizes;
    details->widths_after = out->config().intermediate_sizes;
    details->scores = std::move(scores);
    details->kept = std::move(kept);
  }
  return out;
}

/// The options of the recovery fine-tune, from the context's budget.
inline train::TrainOptions recovery_options(const Context& context, const std::string& what = "Prune") {
  const auto& b = context.budget;
  train::TrainOptions o;
  o.epochs = b.epochs;
  o.batch_size = b.batch_size;
  o.grad_accumulation = b.grad_accumulation;
  o.learning_rate = b.prune_learning_rate;
  o.weight_decay = b.weight_decay;
  o.warmup_fraction = b.warmup_fraction;
  o.max_grad_norm = b.max_grad_norm;
  o.seed = context.seed;
  o.label = what + " recovery";
  o.compute_dtype = context.train_dtype;
  if (!context.work_dir.empty()) o.checkpoint_dir = context.work_dir;
  return o;
}

/// The P stage with a ratio per layer: importance, slicing, then the recovery fine-tune when
/// context.budget.prune_recovery is on. `model` is left untouched.
inline DenseModel prune_ffn(const DenseModel& model, const std::vector<double>& ratios, Context& context,
                            const Options& options = {}) {
  const auto& what = options.label;
  const auto& budget = context.budget;
  if (budget.prune_recovery) {  // checked before the calibration pass, not after it
    if (context.train.empty())
      detail::fail(
          "budget.prune_recovery is on but context.train is empty; give training examples or turn "
          "the recovery fine-tune off");
    if (budget.train_samples <= 0)
      detail::fail("budget.train_samples must be positive, not " + std::to_string(budget.train_samples));
    train::validate(recovery_options(context, what));
  }
  context.report(what, 0.0);
  auto lm = prune_ffn(model.lm(), ratios, context, nullptr, options);
  std::string widths;
  for (auto w : lm->config().intermediate_sizes) widths += (widths.empty() ? "" : ",") + std::to_string(w);
  context.report(what, 0.9, "FFN widths now " + widths);
  if (budget.prune_recovery) {
    const auto n = std::min<std::size_t>(static_cast<std::size_t>(budget.train_samples), context.train.size());
    const std::vector<Example> examples(context.train.begin(), context.train.begin() + static_cast<std::ptrdiff_t>(n));
    train::fine_tune(lm, examples, recovery_options(context, what), context.progress);
  }
  DenseModel out(lm, model.shared_tokenizer(), model.chat_template(), model.source());
  context.report(what, 1.0);
  return out;
}

}  // namespace ordo::prune

namespace ordo {

/// The paper's P stage: the lowest Percent % of each layer's FFN neurons removed (see above).
template <int Percent>
DenseModel apply(const Prune<Percent>& stage, const DenseModel& model, Context& context) {
  const std::vector<double> ratios(static_cast<std::size_t>(model.config().num_layers), Prune<Percent>::ratio);
  prune::Options options;
  options.label = stage.describe();
  options.weight_share = context.budget.prune_weight_share;
  return prune::prune_ffn(model, ratios, context, options);
}

}  // namespace ordo

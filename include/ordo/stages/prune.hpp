// ordo/stages/prune.hpp — the P stage at run time: structured pruning of the FFN (SwiGLU MLP)
// neurons of every decoder layer.
//
//   apply(Prune<Percent>, const DenseModel&, Context&) -> DenseModel
//       removes the least important Percent % of the intermediate neurons of each layer (the
//       paper: 30 %), then optionally fine-tunes to recover (context.budget.prune_recovery).
//   prune::prune_ffn(const DenseModel&, std::vector<double> ratios, Context&) -> DenseModel
//       the same with a ratio per layer (beyond the paper: non-uniform pruning).
//
// Importance of neuron i of layer l: the policy (prune::importance_kind; in the stage's type as
// ordo::importance::*). X is down_proj's input (silu(gate_proj(h)) * up_proj(h)), over the real
// tokens of the calibration examples; sums in fp64.
//   paper       the paper, section 2.1.2:
//                 weight_i     = sum_j |W_gate[i, j]| + sum_j |W_up[i, j]|
//                 activation_i = mean |gate_proj(h)_i| (before SiLU) over the real tokens
//                                (the paper's script averages over padded positions too; ordo does not)
//                 score_i      = 0.5 * weight_i / max_l(weight) + 0.5 * activation_i / max_l(activation)
//                 (prune::Options::weight_share, beyond the paper, changes the 0.5 : 0.5 mix; a layer
//                 whose maximum is 0 contributes 0 for that term)
//   activation  Minitron: per sequence the mean of |X_i| over its tokens, then the L2 norm over sequences
//   wanda       Wanda-sp: sum_j |W_down[j, i]| * ||X_i||_2 (the norm over all calibration tokens)
//   flap        FLAP's fluctuation: Var(X_i) over the calibration tokens * sum_j W_down[j, i]^2; the
//               removed neurons' mean contribution W_down[:, removed] * mean(X_removed) is added to
//               down_proj as a bias (bias compensation: the model gains mlp_bias)
//   taylor      LLM-Pruner's first order: sum over the neuron's weights (row i of W_gate and W_up,
//               column i of W_down) of |w * dL/dw|, L the summed next-token cross-entropy of the
//               calibration examples (one backward pass per batch)
// Allocation (prune::allocation_kind; ordo::allocation::*):
//   uniform     per layer, floor(width * ratio) neurons with the lowest scores are removed (ties:
//               the later index goes first), the paper's count: Qwen2.5-3B's 11008 neurons keep
//               11008 - floor(3302.4) = 7706 at 30 %
//   global      each layer's scores standardized ((s - mean) / std), ranked across layers; as many
//               neurons removed in all as uniform would, none of a layer beyond
//               Options::max_layer_ratio of its width (default min(2 * ratio, 0.9)) nor its last one
// The kept neurons keep their original order: rows of gate_proj and up_proj and columns of
// down_proj are sliced, nothing else changes, and the new per-layer widths are recorded in the
// config (decoder_config::to_json writes one integer when all layers are equal, a list
// otherwise).
//
// Calibration: the first min(budget.calibration_samples, calibration.size()) examples of
// context.calibration, in batches of budget.batch_size, right-padded; one forward pass without
// gradients (taylor: with gradients of the MLP weights). Each Example's ids are all real tokens
// (its labels play no part here).
//
// Recovery (context.budget.prune_recovery): training of the pruned model on the first
// min(budget.train_samples, train.size()) examples of context.train with the budget's epochs,
// batch size, accumulation, warmup, weight decay and clipping at budget.prune_learning_rate,
// seeded by context.seed, checkpoints in context.work_dir when it is set. The loss
// (budget.prune_recovery_loss): next-token cross-entropy (the paper: 2 epochs at 5e-5), or
// distillation from the unpruned model (Minitron: KL between the two models' next-token
// distributions at temperature 1, no cross-entropy term).
#pragma once

#include <algorithm>  // std::min, std::max
#include <cmath>      // std::floor, std::llround, std::isfinite
#include <cstdint>    // std::int64_t
#include <limits>     // std::numeric_limits
#include <map>        // std::map
#include <optional>   // std::optional
#include <stdexcept>  // std::invalid_argument, std::runtime_error
#include <string>     // std::string, std::to_string
#include <string_view>  // std::string_view
#include <vector>     // std::vector

#include <torch/torch.h>

#include <ordo/model/decoder.hpp>          // CausalLM, DecoderLayerImpl, detail::rope_inverse_frequencies
#include <ordo/pipeline/stages.hpp>        // Prune
#include <ordo/stages/context.hpp>         // Context, Example
#include <ordo/model/dense_model.hpp>      // DenseModel
#include <ordo/model/quantized_model.hpp>  // QuantizedModel
#include <ordo/stages/distill.hpp>         // distill::loss_terms (recovery by distillation)
#include <ordo/train/trainer.hpp>          // fine_tune, train, TrainOptions, token_cross_entropy_sum

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

/// The importance scores (see the top of this file); ordo::importance::* name them in types.
enum class importance_kind { paper, activation, wanda, flap, taylor };
/// How removals spread over layers; ordo::allocation::* name them in types.
enum class allocation_kind { uniform, global };

inline constexpr importance_kind importance_kinds[] = {importance_kind::paper, importance_kind::activation,
                                                       importance_kind::wanda, importance_kind::flap,
                                                       importance_kind::taylor};

constexpr std::string_view name(importance_kind k) {
  switch (k) {
    case importance_kind::paper: return importance::paper::name;
    case importance_kind::activation: return importance::activation::name;
    case importance_kind::wanda: return importance::wanda::name;
    case importance_kind::flap: return importance::flap::name;
    case importance_kind::taylor: return importance::taylor::name;
  }
  return "?";
}
constexpr std::string_view name(allocation_kind k) {
  return k == allocation_kind::global ? allocation::global::name : allocation::uniform::name;
}

/// "paper", "activation", "wanda", "flap", "taylor" -> the kind; std::invalid_argument otherwise.
inline importance_kind parse_importance(std::string_view text) {
  for (auto k : importance_kinds)
    if (name(k) == text) return k;
  throw std::invalid_argument("unknown pruning importance '" + std::string(text) +
                              "' (paper, activation, wanda, flap, taylor)");
}
/// "uniform", "global" -> the kind; std::invalid_argument otherwise.
inline allocation_kind parse_allocation(std::string_view text) {
  if (text == allocation::uniform::name) return allocation_kind::uniform;
  if (text == allocation::global::name) return allocation_kind::global;
  throw std::invalid_argument("unknown pruning allocation '" + std::string(text) + "' (uniform, global)");
}

/// The kind a policy tag of the stage's type stands for.
template <class Tag>
constexpr importance_kind importance_of() {
  for (auto k : importance_kinds)
    if (name(k) == Tag::name) return k;
  return importance_kind::paper;
}
template <class Tag>
constexpr allocation_kind allocation_of() {
  return Tag::name == allocation::global::name ? allocation_kind::global : allocation_kind::uniform;
}

/// The importance scores of one layer's intermediate neurons, each [width], fp64, on the CPU.
struct layer_importance {
  torch::Tensor weight;      // the paper's weight term: sum|W_gate[i,:]| + sum|W_up[i,:]|
  torch::Tensor activation;  // the paper's activation term: mean |gate_proj output_i| over real tokens
  torch::Tensor combined;    // the score neurons are ranked by: the policy's (the paper's mix for `paper`)
  torch::Tensor input_mean;  // mean of down_proj's input X_i over real tokens (FLAP's bias compensation)
};

/// Choices beyond the paper.
struct Options {
  importance_kind importance = importance_kind::paper;
  allocation_kind allocation = allocation_kind::uniform;
  /// Share of the weight term in the paper's score; the activation term gets the rest. The
  /// paper: 0.5. On SmolLM2-135M (30 %, no recovery) the activation term alone ranks neurons far
  /// better than the paper's mix (docs/pruning.md).
  double weight_share = 0.5;
  /// allocation::global: the largest share of a layer's neurons it may lose; 0: min(2 * the
  /// largest ratio, 0.9).
  double max_layer_ratio = 0.0;
  /// Add the removed neurons' mean output to down_proj as a bias; default: on for flap only.
  std::optional<bool> compensate;
  std::string label = "Prune";  ///< names the work in progress lines and errors

  bool compensates() const { return compensate.value_or(importance == importance_kind::flap); }
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

/// What one layer's calibration pass collects, fp64, [width] each, on the model's device.
struct layer_stats {
  torch::Tensor gate_abs;     // sum over real tokens of |gate_proj output|
  torch::Tensor x_sum;        // sum over real tokens of X (down_proj's input)
  torch::Tensor x_sq;         // sum over real tokens of X^2
  torch::Tensor seq_mean_sq;  // sum over sequences of (mean over the sequence's tokens of |X|)^2

  explicit layer_stats(std::int64_t width = 0, torch::Device device = torch::kCPU) {
    auto z = [&] { return torch::zeros({width}, torch::TensorOptions().dtype(torch::kFloat64).device(device)); };
    gate_abs = z(), x_sum = z(), x_sq = z(), seq_mean_sq = z();
  }
};

/// One forward pass of `lm` that adds each layer's statistics into `stats` (sized by the
/// caller). Returns the logits, which equal lm->forward(ids, mask): the computation is
/// CausalLM::forward's, layer by layer (tested). ids [B, T]; mask [B, T] of 1 (real) / 0 (padding).
inline torch::Tensor forward_collecting(model::CausalLM& lm, const torch::Tensor& ids, const torch::Tensor& mask,
                                        std::vector<layer_stats>& stats) {
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
  auto lengths = weight.sum(1);                          // [B, 1]
  for (std::size_t i = 0; i < lm->model->layers->size(); ++i) {
    auto& layer = *lm->model->layers->ptr<model::DecoderLayerImpl>(i);
    x = x + layer.self_attn(layer.input_layernorm(x), cos, sin, bias);
    auto h = layer.post_attention_layernorm(x);
    auto gate = layer.mlp->gate_proj(h);
    auto inner = torch::silu(gate) * layer.mlp->up_proj(h);
    auto& s = stats[i];
    s.gate_abs += (gate.to(torch::kFloat64).abs() * weight).sum(torch::IntArrayRef{0, 1});
    auto X = inner.to(torch::kFloat64) * weight;  // padding zeroed
    s.x_sum += X.sum(torch::IntArrayRef{0, 1});
    s.x_sq += X.square().sum(torch::IntArrayRef{0, 1});
    auto seq_mean = X.abs().sum(1) / lengths.clamp_min(1.0);  // [B, width]
    s.seq_mean_sq += seq_mean.square().sum(0);
    x = x + layer.mlp->down_proj(inner);
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

/// The calibration batches: [B, T] ids (padding id 0) and mask, right-padded.
struct calibration_batch {
  torch::Tensor ids, mask;
};

inline std::vector<calibration_batch> calibration_batches(const model::CausalLM& lm, const Context& context) {
  const auto& budget = context.budget;
  if (context.calibration.empty()) fail("no calibration data (context.calibration is empty)");
  if (budget.calibration_samples <= 0)
    fail("budget.calibration_samples must be positive, not " + std::to_string(budget.calibration_samples));
  if (budget.batch_size <= 0) fail("budget.batch_size must be positive, not " + std::to_string(budget.batch_size));
  const auto n = static_cast<std::size_t>(
      std::min<std::int64_t>(budget.calibration_samples, static_cast<std::int64_t>(context.calibration.size())));
  const auto vocab = lm->config().vocab_size;
  for (std::size_t e = 0; e < n; ++e) {
    const auto& ids = context.calibration[e].ids;
    if (ids.empty()) fail("calibration example " + std::to_string(e) + " has no tokens");
    for (auto id : ids)
      if (id < 0 || id >= vocab)
        fail("calibration example " + std::to_string(e) + " holds token id " + std::to_string(id) +
             ", outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
  }
  std::vector<calibration_batch> out;
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
    }
    out.push_back({ids, mask});
  }
  return out;
}

/// Per layer, sum over the MLP weights of each neuron of |w * dL/dw|, L the summed next-token
/// cross-entropy of the batches (gradients of the MLP weights only; the model's flags and
/// gradients are restored). fp64 [width] per layer, on the CPU.
inline std::vector<torch::Tensor> taylor_scores(model::CausalLM& lm, const std::vector<calibration_batch>& batches,
                                                const Context& context, const std::string& what) {
  std::vector<std::pair<torch::Tensor, bool>> flags;
  for (auto& p : lm->parameters()) {
    flags.emplace_back(p, p.requires_grad());
    p.set_requires_grad(false);
    p.mutable_grad() = torch::Tensor();
  }
  struct restore {
    std::vector<std::pair<torch::Tensor, bool>>& flags;
    ~restore() {
      for (auto& [p, f] : flags) {
        p.mutable_grad() = torch::Tensor();
        p.set_requires_grad(f);
      }
    }
  } restore_flags{flags};
  const auto layers = lm->model->layers->size();
  auto mlp = [&](std::size_t i) -> model::MLPImpl& { return *lm->model->layers->ptr<model::DecoderLayerImpl>(i)->mlp; };
  for (std::size_t i = 0; i < layers; ++i)
    for (auto* l : {&mlp(i).gate_proj, &mlp(i).up_proj, &mlp(i).down_proj}) (*l)->weight.set_requires_grad(true);
  const bool was_training = lm->is_training();
  lm->eval();
  const auto device = lm->model->embed_tokens->weight.device();
  const std::size_t ranks = context.group ? static_cast<std::size_t>(context.group->size()) : 1;
  const std::size_t rank = context.group ? static_cast<std::size_t>(context.group->rank()) : 0;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    if (b % ranks != rank) continue;  // this rank's batches; the gradients are summed below
    auto ids = batches[b].ids.to(device), mask = batches[b].mask.to(device);
    auto labels = ids.masked_fill(mask == 0, data::ignore_index);
    auto loss = train::token_cross_entropy_sum(lm->forward(ids, mask), labels);
    if (!std::isfinite(loss.item<double>()))
      throw std::runtime_error("ordo::" + what + ": the calibration loss is not finite; cannot compute Taylor scores");
    loss.backward();
    context.report(what, 0.9 * static_cast<double>(b + 1) / static_cast<double>(batches.size()),
                   "taylor: " + std::to_string(b + 1) + "/" + std::to_string(batches.size()) + " batches");
  }
  lm->train(was_training);
  if (context.group) {
    std::vector<torch::Tensor> grads;
    for (std::size_t i = 0; i < layers; ++i)
      for (auto* l : {&mlp(i).gate_proj, &mlp(i).up_proj, &mlp(i).down_proj}) {
        auto& w = (*l)->weight;
        if (!w.grad().defined()) w.mutable_grad() = torch::zeros_like(w);  // a rank without batches
        grads.push_back(w.grad().cpu());
      }
    context.group->all_reduce_sum(grads);
    std::size_t k = 0;
    for (std::size_t i = 0; i < layers; ++i)
      for (auto* l : {&mlp(i).gate_proj, &mlp(i).up_proj, &mlp(i).down_proj}) (*l)->weight.mutable_grad().copy_(grads[k++]);
  }
  std::vector<torch::Tensor> out;
  for (std::size_t i = 0; i < layers; ++i) {
    auto term = [](const torch::Tensor& w) { return (w.detach() * w.grad()).to(torch::kFloat64).abs(); };
    out.push_back(
        (term(mlp(i).gate_proj->weight).sum(1) + term(mlp(i).up_proj->weight).sum(1) + term(mlp(i).down_proj->weight).sum(0))
            .cpu());
  }
  return out;
}

}  // namespace detail

/// Importance of every intermediate neuron of every layer of `lm` (dense MLP weights), from the
/// calibration examples and budget of `context`, by options.importance (see the top of this
/// file). Throws std::invalid_argument for no calibration data, a budget <= 0, an empty example
/// or a token id outside the vocabulary; std::runtime_error for non-finite statistics.
inline std::vector<layer_importance> importance(const model::CausalLM& model, const Context& context,
                                                const Options& options = {}) {
  const auto& what = options.label;
  if (!(options.weight_share >= 0.0 && options.weight_share <= 1.0))
    detail::fail("options.weight_share is " + std::to_string(options.weight_share) + "; it must lie in [0, 1]");
  auto& lm = const_cast<model::CausalLM&>(model);  // read only (taylor: gradients, restored after)
  detail::check_dense(lm);
  const auto batches = detail::calibration_batches(lm, context);

  const auto device = lm->model->embed_tokens->weight.device();
  const auto layers = lm->model->layers->size();
  std::vector<detail::layer_stats> stats;
  for (std::size_t i = 0; i < layers; ++i) stats.emplace_back(lm->config().intermediate_sizes.at(i), device);
  double tokens = 0;
  std::size_t seen = 0;
  // With a group, each rank passes the batches at positions rank, rank + N, ... (the same
  // batches one process makes) and the sums are reduced below.
  const std::size_t ranks = context.group ? static_cast<std::size_t>(context.group->size()) : 1;
  const std::size_t rank = context.group ? static_cast<std::size_t>(context.group->rank()) : 0;
  for (const auto& b : batches) {
    if (static_cast<std::size_t>(&b - batches.data()) % ranks != rank) continue;
    detail::forward_collecting(lm, b.ids.to(device), b.mask.to(device), stats);
    tokens += static_cast<double>(b.mask.sum().item<std::int64_t>());
    seen += static_cast<std::size_t>(b.ids.size(0));
    const double share = options.importance == importance_kind::taylor ? 0.45 : 0.9;
    context.report(what, share * static_cast<double>(&b - batches.data() + 1) / static_cast<double>(batches.size()),
                   "importance: " + std::to_string(seen) + " calibration examples");
  }
  if (context.group) {  // the sums over every rank's batches: what one process sums
    std::vector<torch::Tensor> sums;
    for (auto& st : stats)
      for (auto* t : {&st.gate_abs, &st.x_sum, &st.x_sq, &st.seq_mean_sq}) sums.push_back(t->cpu());
    context.group->all_reduce_sum(sums);
    std::size_t k = 0;
    for (auto& st : stats)
      for (auto* t : {&st.gate_abs, &st.x_sum, &st.x_sq, &st.seq_mean_sq}) *t = sums[k++].to(device);
    tokens = context.group->all_reduce_sum({tokens})[0];
  }
  std::vector<torch::Tensor> taylor;
  if (options.importance == importance_kind::taylor) taylor = detail::taylor_scores(lm, batches, context, what);

  std::vector<layer_importance> out(layers);
  for (std::size_t i = 0; i < layers; ++i) {
    auto& mlp = *lm->model->layers->ptr<model::DecoderLayerImpl>(i)->mlp;
    auto& s = out[i];
    const auto& st = stats[i];
    s.weight = (mlp.gate_proj->weight.detach().to(torch::kFloat64).abs().sum(1) +
                mlp.up_proj->weight.detach().to(torch::kFloat64).abs().sum(1))
                   .cpu();
    s.activation = (st.gate_abs / tokens).cpu();
    s.input_mean = (st.x_sum / tokens).cpu();
    const auto down = mlp.down_proj->weight.detach().to(torch::kFloat64).cpu();  // [hidden, width]
    const auto x_sq = st.x_sq.cpu();
    switch (options.importance) {
      case importance_kind::paper:
        s.combined = options.weight_share * detail::by_max(s.weight) +
                     (1.0 - options.weight_share) * detail::by_max(s.activation);
        break;
      case importance_kind::activation: s.combined = st.seq_mean_sq.cpu().sqrt(); break;
      case importance_kind::wanda: s.combined = down.abs().sum(0) * x_sq.sqrt(); break;
      case importance_kind::flap:
        s.combined = (x_sq / tokens - s.input_mean.square()).clamp_min(0.0) * down.square().sum(0);
        break;
      case importance_kind::taylor: s.combined = taylor[i]; break;
    }
    if (!torch::isfinite(s.weight).all().item<bool>() || !torch::isfinite(s.combined).all().item<bool>() ||
        !torch::isfinite(s.activation).all().item<bool>() || !torch::isfinite(s.input_mean).all().item<bool>())
      throw std::runtime_error("ordo::" + what + ": layer " + std::to_string(i) +
                               " has non-finite weights or activations; cannot rank its neurons");
  }
  return out;
}

namespace detail {
inline void check_ratio(std::size_t layer, double r) {
  if (!(r > 0.0 && r < 1.0))
    fail("the ratio of layer " + std::to_string(layer) + " is " + std::to_string(r) +
         "; a ratio is the share of neurons removed and must lie in (0, 1)");
}
}  // namespace detail

/// The neurons each layer keeps under allocation::uniform: the highest
/// `kept_neurons(width, ratios[l])` combined scores (ties: the lower index is kept), as sorted
/// int64 indices. ratios: one per layer, in (0, 1).
inline std::vector<torch::Tensor> select_kept(const std::vector<layer_importance>& scores,
                                              const std::vector<double>& ratios) {
  if (ratios.size() != scores.size())
    detail::fail(std::to_string(ratios.size()) + " ratios for " + std::to_string(scores.size()) + " layers");
  std::vector<torch::Tensor> keep;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    detail::check_ratio(i, ratios[i]);
    const auto& c = scores[i].combined;
    const auto k = kept_neurons(c.size(0), ratios[i]);
    auto order = std::get<1>(torch::sort(c, /*stable=*/true, /*dim=*/0, /*descending=*/true));
    keep.push_back(std::get<0>(torch::sort(order.slice(0, 0, k))));
  }
  return keep;
}

/// allocation::global: each layer's combined scores standardized ((s - mean) / std, population
/// std; 0 where std is 0), then the lowest across all layers removed, as many in all as uniform
/// allocation would remove (sum of floor(width * ratios[l])), at most floor(width *
/// max_layer_ratio) and never the last neuron of a layer (max_layer_ratio 0: min(2 * max
/// ratio, 0.9)). Ties: the earlier layer, then the later index, goes first. Sorted int64 indices.
inline std::vector<torch::Tensor> select_kept_global(const std::vector<layer_importance>& scores,
                                                     const std::vector<double>& ratios, double max_layer_ratio = 0.0) {
  if (ratios.size() != scores.size())
    detail::fail(std::to_string(ratios.size()) + " ratios for " + std::to_string(scores.size()) + " layers");
  double largest = 0;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    detail::check_ratio(i, ratios[i]);
    largest = std::max(largest, ratios[i]);
    total += scores[i].combined.size(0) - kept_neurons(scores[i].combined.size(0), ratios[i]);
  }
  if (max_layer_ratio == 0.0) max_layer_ratio = std::min(2.0 * largest, 0.9);
  if (!(max_layer_ratio > 0.0 && max_layer_ratio < 1.0))
    detail::fail("max_layer_ratio is " + std::to_string(max_layer_ratio) + "; it must lie in (0, 1)");
  if (max_layer_ratio < largest)
    detail::fail("max_layer_ratio (" + std::to_string(max_layer_ratio) + ") must be at least the largest ratio (" +
                 std::to_string(largest) + ")");
  struct candidate {
    double z;
    std::size_t layer;
    std::int64_t index;
  };
  std::vector<candidate> all;
  std::vector<std::int64_t> cap(scores.size()), removed(scores.size(), 0);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const auto c = scores[i].combined.to(torch::kFloat64).contiguous();
    const auto width = c.size(0);
    cap[i] = std::min<std::int64_t>(width - 1, static_cast<std::int64_t>(std::floor(static_cast<double>(width) *
                                                                                      max_layer_ratio + 1e-9)));
    const double mean = c.mean().item<double>();
    const double sd = width > 1 ? c.std(/*unbiased=*/false).item<double>() : 0.0;
    const auto* p = c.data_ptr<double>();
    for (std::int64_t j = 0; j < width; ++j) all.push_back({sd > 0 ? (p[j] - mean) / sd : 0.0, i, j});
  }
  std::stable_sort(all.begin(), all.end(), [](const candidate& a, const candidate& b) {
    if (a.z != b.z) return a.z < b.z;
    if (a.layer != b.layer) return a.layer < b.layer;
    return a.index > b.index;
  });
  std::vector<std::vector<bool>> gone(scores.size());
  for (std::size_t i = 0; i < scores.size(); ++i) gone[i].assign(static_cast<std::size_t>(scores[i].combined.size(0)), false);
  std::int64_t done = 0;
  for (const auto& c : all) {
    if (done == total) break;
    if (removed[c.layer] >= cap[c.layer]) continue;
    gone[c.layer][static_cast<std::size_t>(c.index)] = true;
    ++removed[c.layer];
    ++done;
  }
  std::vector<torch::Tensor> keep;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    std::vector<std::int64_t> k;
    for (std::size_t j = 0; j < gone[i].size(); ++j)
      if (!gone[i][j]) k.push_back(static_cast<std::int64_t>(j));
    keep.push_back(torch::tensor(k, torch::kLong));
  }
  return keep;
}

/// A new CausalLM holding exactly `lm`'s weights, except that layer l's MLP keeps only the
/// neurons `keep[l]` (sorted, distinct int64 indices): rows of gate_proj/up_proj (and their
/// biases), columns of down_proj. With `input_means` (one [width] fp64 tensor per layer: the
/// mean of down_proj's input), the removed neurons' mean contribution W_down[:, removed] *
/// mean[removed] is added to down_proj's bias (FLAP's bias compensation; the config gains
/// mlp_bias, gate/up biases zero when the source had none). The config's intermediate_sizes
/// become the kept counts; dtype, requires_grad and the training flag are kept.
inline model::CausalLM slice_ffn(const model::CausalLM& source, const std::vector<torch::Tensor>& keep,
                                 const std::vector<torch::Tensor>* input_means = nullptr) {
  auto& src = const_cast<model::CausalLM&>(source);
  detail::check_dense(src);
  auto config = src->config();
  if (keep.size() != static_cast<std::size_t>(config.num_layers))
    detail::fail("kept neurons given for " + std::to_string(keep.size()) + " layers, the model has " +
                 std::to_string(config.num_layers));
  if (input_means && input_means->size() != keep.size())
    detail::fail("input means given for " + std::to_string(input_means->size()) + " layers, the model has " +
                 std::to_string(config.num_layers));
  std::map<std::string, std::pair<torch::Tensor, int>> sliced;  // parameter -> (indices, dim)
  std::map<std::string, torch::Tensor> compensation;            // down_proj.bias -> added values
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
    sliced[p + "gate_proj.bias"] = {kc, 0};
    sliced[p + "up_proj.bias"] = {kc, 0};
    if (input_means) {
      const auto& mean = (*input_means)[i];
      if (!mean.defined() || mean.dim() != 1 || mean.size(0) != width)
        detail::fail("the input mean of layer " + std::to_string(i) + " must have " + std::to_string(width) +
                     " values");
      auto removed = torch::ones({width}, torch::kBool);
      removed.index_put_({kc}, false);
      const auto& down = src->model->layers->ptr<model::DecoderLayerImpl>(i)->mlp->down_proj->weight;
      auto w = down.detach().to(torch::kCPU, torch::kFloat64);
      compensation[p + "down_proj.bias"] =
          torch::matmul(w.index({torch::indexing::Slice(), removed}), mean.to(torch::kFloat64).cpu().index({removed}));
    }
  }
  if (input_means) config.mlp_bias = true;
  torch::NoGradGuard no_grad;
  model::CausalLM out(config, model::build_options(model::placement(src->device(), src->dtype()), /*draw=*/false));
  auto from = src->named_parameters();
  for (auto& p : out->named_parameters()) {
    const auto* found = from.find(p.key());
    torch::Tensor t;
    if (!found) {  // a bias the source did not have (compensation added it): zero
      t = torch::zeros_like(p.value());
    } else if (auto it = sliced.find(p.key()); it != sliced.end()) {
      t = found->detach().index_select(it->second.second, it->second.first.to(found->device())).contiguous();
    } else {
      t = found->detach().clone();
    }
    if (auto c = compensation.find(p.key()); c != compensation.end())
      t = (t.to(torch::kFloat64) + c->second.to(t.device())).to(t.scalar_type());
    p.value().set_data(t);
    p.value().set_requires_grad(found ? found->requires_grad() : src->parameters().front().requires_grad());
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

/// Importance, selection (options.allocation) and slicing (with FLAP's bias compensation when
/// options.compensates()) of `lm` with a ratio per layer; no recovery.
inline model::CausalLM prune_ffn(const model::CausalLM& lm, const std::vector<double>& ratios, const Context& context,
                                 report* details = nullptr, const Options& options = {}) {
  if (ratios.size() != static_cast<std::size_t>(lm->config().num_layers))
    detail::fail(std::to_string(ratios.size()) + " ratios for a model of " + std::to_string(lm->config().num_layers) +
                 " layers");
  for (std::size_t i = 0; i < ratios.size(); ++i) detail::check_ratio(i, ratios[i]);
  if (options.compensates() && lm->config().model_type != "llama")
    detail::fail("bias compensation (FLAP) needs MLP biases, which only Llama models carry (this is a " +
                 lm->config().model_type + " model); turn compensation off");
  auto scores = importance(lm, context, options);
  auto kept = options.allocation == allocation_kind::global ? select_kept_global(scores, ratios, options.max_layer_ratio)
                                                            : select_kept(scores, ratios);
  std::vector<torch::Tensor> means;
  for (const auto& s : scores) means.push_back(s.input_mean);
  auto out = slice_ffn(lm, kept, options.compensates() ? &means : nullptr);
  if (details) {
    details->widths_before = lm->config().intermediate_sizes;
    details->widths_after = out->config().intermediate_sizes;
    details->scores = std::move(scores);
    details->kept = std::move(kept);
  }
  return out;
}

/// The options of the recovery training, from the context's budget.
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
  o.checkpoint_seconds = context.checkpoint_seconds;
  o.checkpoint_at_end = context.checkpoint_at_end;
  o.group = context.group;
  o.fused_adamw = context.fused_adamw;
  return o;
}

/// The P stage with a ratio per layer: importance, selection, slicing, then the recovery
/// (context.budget.prune_recovery, with budget.prune_recovery_loss). `model` is left untouched.
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
    if (budget.prune_recovery_loss == recovery_loss::distillation) {
      // Minitron: the unpruned model is the teacher; KL at temperature 1, no cross-entropy.
      auto teacher = const_cast<DenseModel&>(model).lm();
      const bool was_training = teacher->is_training();
      teacher->eval();
      for (auto& p : lm->parameters()) p.set_requires_grad(true);
      auto loss = [&](model::CausalLM& student, const data::Batch& b) {
        torch::Tensor target;
        {
          torch::NoGradGuard no_grad;
          target = teacher->forward(b.ids, b.attention_mask);
        }
        return distill::loss_terms(student->forward(b.ids, b.attention_mask), target, b.labels, 1.0, 1.0).loss;
      };
      train::train(lm, examples, loss, recovery_options(context, what), context.progress);
      teacher->train(was_training);
      lm->eval();
    } else {
      train::fine_tune(lm, examples, recovery_options(context, what), context.progress);
    }
  }
  DenseModel out(lm, model.shared_tokenizer(), model.chat_template(), model.source());
  context.report(what, 1.0);
  return out;
}

/// The options a Prune<Percent, Importance, Allocation> stage runs with under `context`.
template <class Importance, class Allocation>
Options options_for(const std::string& label, const Context& context) {
  Options o;
  o.label = label;
  o.importance = importance_of<Importance>();
  o.allocation = allocation_of<Allocation>();
  o.weight_share = context.budget.prune_weight_share;
  return o;
}

}  // namespace ordo::prune

namespace ordo {

/// The P stage: Percent % of the FFN neurons removed, ranked by Importance, spread by
/// Allocation (see above); the paper's when both are defaulted.
template <int Percent, class... Policy>
DenseModel apply(const Prune<Percent, Policy...>& stage, const DenseModel& model, Context& context) {
  using S = Prune<Percent, Policy...>;
  const std::vector<double> ratios(static_cast<std::size_t>(model.config().num_layers), S::ratio);
  return prune::prune_ffn(
      model, ratios, context,
      prune::options_for<typename S::importance_type, typename S::allocation_type>(stage.describe(), context));
}

}  // namespace ordo

// ordo/train/trainer.hpp — training a CausalLM on examples for a loss callback.
//
//   auto r = ordo::train::train(lm, examples, loss, options, progress);   // any loss
//   auto r = ordo::train::fine_tune(lm, examples, options, progress);     // plain cross-entropy
//
// What a step does: the micro-batches of one window (batch_size examples each,
// grad_accumulation of them) run forward and backward; the loss callback returns the SUM of
// its per-token losses over a batch, and the trainer divides by the scored tokens of the whole
// window, so every scored token weighs the same however the window is cut into batches and
// padded. Then: a guard against a non-finite loss or gradient norm (the step is not taken: the
// model keeps the parameters of the last good step, and a NonFiniteLoss error says where),
// gradient clipping by global L2 norm, AdamW (torch::optim::AdamW, decoupled weight decay) at
// the scheduled learning rate (schedule.hpp). On the CPU the AdamW step and the clipping's scale
// run as one pass per parameter that gives LibTorch's bits (fused_adamw.hpp).
//
// Determinism: the order of examples per epoch is a permutation fixed by (seed, epoch)
// (data/split.hpp), nothing else is random, so two runs with the same inputs and thread count
// give the same parameters bit for bit. A checkpoint (parameters, AdamW state, step, LibTorch's
// CPU generator state and a fingerprint of the run) is written atomically (temporary file,
// fsync, rename) every `checkpoint_every` steps or `checkpoint_seconds` seconds, when the run
// stops early and at the end (unless `checkpoint_at_end` is false); a run
// given the same checkpoint path resumes from it, and a resumed run equals an uninterrupted one
// bit for bit (tests/train). A checkpoint of another run (other data, sizes or options) is an
// error, never silently used.
//
// Precision: parameters (the master weights), gradients and optimizer state are always fp32.
// With compute_dtype = bf16 the forward passes and the loss callback run under LibTorch's
// autocast (at::autocast, bf16) of the model's device (CPU or CUDA): matmuls and linears take bf16 copies of their fp32 inputs and
// weights, the backward pass returns fp32 gradients to the fp32 parameters, and the residual
// stream, the norms and the losses stay fp32 (see docs/training.md).
#pragma once

#include <algorithm>   // std::fill, std::min
#include <chrono>      // std::chrono::steady_clock
#include <cmath>       // std::isfinite, std::llround
#include <cstdint>     // std::int64_t, std::uint64_t
#include <cstring>     // std::memcpy
#include <filesystem>  // std::filesystem::path
#include <functional>  // std::function
#include <iomanip>     // std::setprecision
#include <mutex>       // std::lock_guard
#include <numeric>     // std::iota
#include <optional>    // std::optional
#include <sstream>     // std::ostringstream
#include <stdexcept>   // std::invalid_argument, std::runtime_error
#include <string>      // std::string
#include <vector>      // std::vector

#include <ATen/autocast_mode.h>  // at::autocast (bf16 mixed precision)
#include <torch/torch.h>

#include <ordo/data/batch.hpp>          // Batch, collate
#include <ordo/data/examples.hpp>       // check_example, ignore_index
#include <ordo/data/split.hpp>          // permutation
#include <ordo/io/atomic_write.hpp>     // write_file_atomically
#include <ordo/model/decoder.hpp>       // CausalLM
#include <ordo/model/torch_compat.hpp>  // compat::set_autocast_enabled, set_autocast_dtype
#include <ordo/data/example.hpp>        // Example
#include <ordo/train/distributed.hpp>   // dist::group
#include <ordo/train/fused_adamw.hpp>   // adamw_step, probe_adamw_rounding
#include <ordo/train/progress.hpp>      // progress_fn
#include <ordo/train/schedule.hpp>      // Schedule, Decay

namespace ordo::train {

struct TrainOptions {
  std::int64_t epochs = 1;
  std::int64_t batch_size = 4;         ///< examples per micro-batch
  std::int64_t grad_accumulation = 1;  ///< micro-batches per optimizer step
  double learning_rate = 5e-5;         ///< peak
  double weight_decay = 0.0;           ///< AdamW's decoupled decay
  double warmup_fraction = 0.1;        ///< of the optimizer steps; see warmup_steps
  std::int64_t warmup_steps = -1;      ///< >= 0 overrides warmup_fraction
  Decay decay = Decay::cosine;
  double final_lr_ratio = 0.0;
  double max_grad_norm = 1.0;  ///< global L2 norm; 0: no clipping
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  std::uint64_t seed = 0;
  bool shuffle = true;  ///< a new seeded order each epoch
  std::int64_t pad_id = 0;
  std::filesystem::path checkpoint;  ///< file to write and resume from ("": none)
  /// Alternatively a directory: the file is named by the run (label and a hash of the data,
  /// options and starting weights), so runs sharing a work directory never meet.
  std::filesystem::path checkpoint_dir;
  std::int64_t checkpoint_every = 0;  ///< optimizer steps between checkpoints (0: end only)
  /// > 0: also a checkpoint after the first step that ends at least so many seconds after the
  /// last one (or the start), for runs whose steps differ in length.
  double checkpoint_seconds = 0;
  bool checkpoint_at_end = true;  ///< false: the caller keeps the result; no final checkpoint
  std::int64_t stop_after = 0;        ///< stop this run after so many steps (0: run to the end)
  std::string label = "train";        ///< names the run in progress lines and errors
  /// Data parallelism (distributed.hpp): with a group of N ranks, each rank runs its share of
  /// every micro-batch (the examples at positions rank, rank + N, ...), the scored-token count
  /// and the gradients are summed over the ranks, so every rank takes the step one process
  /// takes on the whole batch; rank 0 alone writes checkpoints. nullptr: one process.
  std::shared_ptr<dist::group> group;
  /// Precision of the forward and loss: kFloat32, or kBFloat16 (mixed precision: fp32 master
  /// weights, bf16 matmuls under CPU autocast; pays on CPUs with AVX-512 BF16 or AMX).
  torch::ScalarType compute_dtype = torch::kFloat32;
  /// The AdamW step (with the clipping's scale) in one pass per parameter on the CPU when this
  /// LibTorch's rounding is one it repeats (fused_adamw.hpp): the same bits as LibTorch's eight
  /// operators, about a third of their memory traffic; on a CUDA device with LibTorch 2.x, its
  /// multi-tensor fused AdamW (one kernel for all parameters; LibTorch's values up to float
  /// rounding). false: LibTorch's step always.
  bool fused_adamw = true;
};

/// Throws std::invalid_argument naming the first invalid field.
inline void validate(const TrainOptions& o) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("ordo::train (" + o.label + "): " + what); };
  auto finite = [](double v) { return std::isfinite(v); };
  if (o.epochs < 1) fail("epochs must be at least 1 (got " + std::to_string(o.epochs) + ")");
  if (o.batch_size < 1) fail("batch_size must be at least 1 (got " + std::to_string(o.batch_size) + ")");
  if (o.grad_accumulation < 1)
    fail("grad_accumulation must be at least 1 (got " + std::to_string(o.grad_accumulation) + ")");
  if (!(o.learning_rate > 0) || !finite(o.learning_rate)) fail("learning_rate must be positive and finite");
  if (!(o.weight_decay >= 0) || !finite(o.weight_decay)) fail("weight_decay must be >= 0");
  if (!(o.warmup_fraction >= 0 && o.warmup_fraction < 1)) fail("warmup_fraction must lie within [0, 1)");
  if (!(o.final_lr_ratio >= 0 && o.final_lr_ratio <= 1)) fail("final_lr_ratio must lie within [0, 1]");
  if (!(o.max_grad_norm >= 0) || !finite(o.max_grad_norm)) fail("max_grad_norm must be >= 0 (0: no clipping)");
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1)) fail("AdamW betas must lie within [0, 1)");
  if (!(o.epsilon > 0)) fail("epsilon must be positive");
  if (o.checkpoint_every < 0 || o.stop_after < 0) fail("checkpoint_every and stop_after must be >= 0");
  if (!(o.checkpoint_seconds >= 0) || !finite(o.checkpoint_seconds)) fail("checkpoint_seconds must be >= 0 and finite");
  if (o.compute_dtype != torch::kFloat32 && o.compute_dtype != torch::kBFloat16)
    fail(std::string("compute_dtype must be float32 or bfloat16 (got ") + c10::toString(o.compute_dtype) + ")");
}

/// Runs what it guards under LibTorch's autocast for `device` (CPU or CUDA) in `dtype` (nothing
/// when dtype is fp32), restoring the previous state and dropping autocast's weight-cast cache
/// on exit.
class AutocastGuard {
 public:
  explicit AutocastGuard(torch::ScalarType dtype, torch::DeviceType device = torch::kCPU)
      : on_(dtype != torch::kFloat32),
        device_(device),
        was_enabled_(compat::autocast_enabled(device)),
        was_dtype_(compat::autocast_dtype(device)) {
    if (!on_) return;
    compat::set_autocast_dtype(device_, dtype);
    compat::set_autocast_enabled(device_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::set_autocast_enabled(device_, was_enabled_);
    compat::set_autocast_dtype(device_, was_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_;
  torch::DeviceType device_;
  bool was_enabled_;
  torch::ScalarType was_dtype_;
};

/// The loss is not finite: the step was not taken; the model holds the last good parameters.
class NonFiniteLoss : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrainResult {
  std::int64_t total_steps = 0;  ///< optimizer steps of the whole run
  std::int64_t start_step = 0;   ///< where this call began (> 0 after a resume)
  std::int64_t end_step = 0;     ///< steps done when this call returned
  std::vector<double> losses;    ///< mean loss per scored token, per step of this call
  std::int64_t tokens = 0;       ///< real (non-padding) tokens processed by this call
  double seconds = 0;
  std::filesystem::path checkpoint;  ///< the checkpoint file used ("" : none)
  bool finished() const { return end_step == total_steps; }
};

/// Returns the sum of per-token losses over the scored targets of the batch (a scalar with
/// gradients). The trainer normalises by the window's scored tokens.
using LossFn = std::function<torch::Tensor(model::CausalLM&, const data::Batch&)>;

/// Sum of next-token cross-entropies: logits at t predict labels at t + 1; -100 is not scored.
/// `t` in fp32 when it is bf16 or fp16 (losses over a vocabulary need the range); as is otherwise.
inline torch::Tensor upcast(const torch::Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kFloat16 ? t.to(torch::kFloat32) : t;
}

/// token_cross_entropy_sum of logits already cut to the positions that predict a next token
/// (logits[:, :-1], [B, S-1, V]), so that a caller with more terms on those logits slices once.
inline torch::Tensor shifted_cross_entropy_sum(const torch::Tensor& shifted, const torch::Tensor& labels) {
  const auto V = shifted.size(-1);
  auto l = upcast(shifted.reshape({-1, V}));
  auto y = labels.slice(1, 1).reshape({-1});
  namespace F = torch::nn::functional;
  return F::cross_entropy(l, y, F::CrossEntropyFuncOptions().ignore_index(data::ignore_index).reduction(torch::kSum));
}

/// Computed in fp32 at least, whatever the logits' dtype.
inline torch::Tensor token_cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& labels) {
  return shifted_cross_entropy_sum(logits.slice(1, 0, logits.size(1) - 1), labels);
}

namespace detail {

inline std::string fingerprint(const std::vector<Example>& examples, const TrainOptions& o, model::CausalLM& lm) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::uint64_t x) { h = (h ^ x) * 1099511628211ull; };
  for (const auto& e : examples) {
    for (auto x : e.ids) mix(static_cast<std::uint64_t>(x));
    for (auto x : e.labels) mix(static_cast<std::uint64_t>(x));
    mix(0x9e3779b97f4a7c15ull);
  }
  // The starting weights: a checkpoint resumes only the run that began from the same model.
  std::int64_t params = 0;
  std::uint64_t init = 1469598103934665603ull;
  for (const auto& p : lm->named_parameters()) {
    params += p.value().numel();
    for (char c : p.key()) init = (init ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    auto flat = p.value().detach().reshape({-1}).to(torch::kFloat64);
    const double sum = flat.sum().item<double>();
    auto head = flat.slice(0, 0, std::min<std::int64_t>(64, flat.numel())).to(torch::kCPU).contiguous();
    std::uint64_t bits;
    for (std::int64_t i = 0; i <= head.numel(); ++i) {
      const double v = i < head.numel() ? head.data_ptr<double>()[i] : sum;
      std::memcpy(&bits, &v, sizeof bits);
      init = (init ^ bits) * 1099511628211ull;
    }
  }
  std::ostringstream s;
  s << std::setprecision(17) << "ordo-train v1 label=" << o.label << " examples=" << examples.size() << " data=" << h
    << " params=" << params << " init=" << init << " epochs=" << o.epochs << " batch=" << o.batch_size
    << " accum=" << o.grad_accumulation << " lr=" << o.learning_rate << " wd=" << o.weight_decay
    << " warmup=" << o.warmup_fraction << "/" << o.warmup_steps << " decay=" << decay_name(o.decay)
    << " final=" << o.final_lr_ratio << " clip=" << o.max_grad_norm << " betas=" << o.beta1 << "," << o.beta2
    << " eps=" << o.epsilon << " seed=" << o.seed << " shuffle=" << o.shuffle;
  if (o.compute_dtype != torch::kFloat32)
    s << " compute=" << c10::toString(o.compute_dtype);  // fp32 runs keep v1 names
  return s.str();
}

inline std::string seconds_text(double s) {
  std::ostringstream out;
  if (s >= 3600)
    out << static_cast<long>(s / 3600) << "h" << static_cast<long>(s / 60) % 60 << "m";
  else if (s >= 60)
    out << static_cast<long>(s / 60) << "m" << static_cast<long>(s) % 60 << "s";
  else
    out << std::fixed << std::setprecision(1) << s << "s";
  return out.str();
}

inline void save_checkpoint(const std::filesystem::path& path, model::CausalLM& lm, torch::optim::AdamW& optimizer,
                            std::int64_t step, const std::string& fingerprint) {
  torch::serialize::OutputArchive archive;
  archive.write("fingerprint", c10::IValue(fingerprint));
  archive.write("step", c10::IValue(step));
  for (const auto& p : lm->named_parameters()) archive.write("model." + p.key(), p.value().detach());
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  archive.write("optimizer", opt);
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state());
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  io::write_file_atomically(path, [&](io::AtomicSink& sink) {
    archive.save_to([&](const void* data, std::size_t n) {
      sink.write(std::span<const std::byte>(static_cast<const std::byte*>(data), n));
      return n;
    });
  });
}

/// Loads the checkpoint into lm and optimizer; returns its step.
inline std::int64_t load_checkpoint(const std::filesystem::path& path, model::CausalLM& lm,
                                    torch::optim::AdamW& optimizer, const std::string& fingerprint) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
  } catch (const c10::Error& e) {
    throw std::runtime_error(path.string() + ": not a readable ordo training checkpoint (" +
                             e.what_without_backtrace() + ")");
  }
  c10::IValue fp, step;
  if (!archive.try_read("fingerprint", fp) || !fp.isString() || !archive.try_read("step", step) || !step.isInt())
    throw std::runtime_error(path.string() + ": not an ordo training checkpoint");
  if (fp.toStringRef() != fingerprint)
    throw std::runtime_error(path.string() +
                             ": a checkpoint of another run; refusing to resume from it.\n  checkpoint: " +
                             fp.toStringRef() + "\n  this run:   " + fingerprint +
                             "\n  (remove the file to start over, or give this run another checkpoint path)");
  torch::NoGradGuard no_grad;
  for (auto& p : lm->named_parameters()) {
    torch::Tensor t;
    if (!archive.try_read("model." + p.key(), t))
      throw std::runtime_error(path.string() + ": parameter '" + p.key() + "' is missing");
    if (t.sizes() != p.value().sizes())
      throw std::runtime_error(path.string() + ": parameter '" + p.key() + "' has another shape");
    p.value().copy_(t);
  }
  torch::serialize::InputArchive opt;
  archive.read("optimizer", opt);
  optimizer.load(opt);
  torch::Tensor rng;
  if (archive.try_read("rng", rng)) {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
  }
  return step.toInt();
}

// The gradients of a step's last backward pass, all-reduced while that pass runs: each
// parameter's hook sees its gradient as it will be once accumulated (what the step's earlier
// micro-batches left in .grad plus this pass's part: the same sum AccumulateGrad then makes),
// copies it into the current bucket, and every ~bucket_bytes the bucket goes to the group
// asynchronously (Gloo reduces it in its own threads while the backward pass goes on). finish()
// sends the parameters no hook saw (no gradient in this pass), in parameter order, waits for
// every bucket and writes the sums into .grad. Every rank must arm it for the same pass: the
// hooks fire in the autograd engine's order, the same on every rank for the same model, so the
// buckets match.
class overlapped_gradients {
 public:
  overlapped_gradients(std::vector<torch::Tensor>& params, dist::group& group, std::size_t bucket_bytes)
      : params_(params), group_(group), bucket_bytes_(bucket_bytes), seen_(params.size(), false) {
    for (std::size_t i = 0; i < params_.size(); ++i)
      hooks_.push_back(params_[i].register_hook([this, i](const torch::Tensor& g) {
        if (!armed_) return;
        torch::NoGradGuard no_grad;
        const auto& p = params_[i];
        take(i, p.grad().defined() ? p.grad() + g : g);
      }));
  }
  overlapped_gradients(const overlapped_gradients&) = delete;
  overlapped_gradients& operator=(const overlapped_gradients&) = delete;
  ~overlapped_gradients() {
    for (std::size_t i = 0; i < hooks_.size(); ++i) params_[i].remove_hook(hooks_[i]);
  }

  /// The next backward pass is the step's last: reduce its gradients as they come.
  void arm() { armed_ = true; }

  /// After that pass: the summed gradients in .grad.
  void finish() {
    armed_ = false;
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (!seen_[i]) take(i, params_[i].grad().defined() ? params_[i].grad() : torch::zeros_like(params_[i]));
    launch();
    for (auto& b : sent_) {
      b.wait();
      std::int64_t at = 0;
      for (const auto i : b.index) {
        auto& p = params_[i];
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        const auto n = p.numel();
        p.grad().copy_(b.flat.slice(0, at, at + n).view_as(p));
        at += n;
      }
    }
    sent_.clear();
    std::fill(seen_.begin(), seen_.end(), false);
  }

 private:
  struct bucket {
    torch::Tensor flat;
    std::vector<std::size_t> index;
    std::function<void()> wait;
  };

  void take(std::size_t i, const torch::Tensor& full) {
    seen_[i] = true;
    parts_.push_back(full.to(torch::kCPU, torch::kFloat32).reshape({-1}));
    index_.push_back(i);
    bytes_ += static_cast<std::size_t>(full.numel()) * sizeof(float);
    if (bytes_ >= bucket_bytes_) launch();
  }

  void launch() {
    if (parts_.empty()) return;
    bucket b;
    b.flat = torch::cat(parts_);
    b.index = std::move(index_);
    b.wait = group_.all_reduce_sum_async(b.flat);
    sent_.push_back(std::move(b));
    parts_.clear();
    index_.clear();
    bytes_ = 0;
  }

  std::vector<torch::Tensor>& params_;
  dist::group& group_;
  std::size_t bucket_bytes_;
  std::vector<bool> seen_;
  std::vector<unsigned> hooks_;
  bool armed_ = false;
  std::vector<torch::Tensor> parts_;
  std::vector<std::size_t> index_;
  std::size_t bytes_ = 0;
  std::vector<bucket> sent_;
};

}  // namespace detail

/// Trains `lm` in place on `examples` (validated against its vocabulary) with `loss`.
/// Progress goes to progress(options.label, fraction, "step 3/40 loss 2.31 lr 1.2e-05
/// 1850 tok/s eta 1m05s").
/// Drops the gradients (as PyTorch's zero_grad(set_to_none=True)): the next backward writes
/// them afresh instead of adding to zeros, and nothing fills hundreds of MB with zeros per step.
inline void clear_gradients(std::vector<torch::Tensor>& params) {
  for (auto& p : params) p.mutable_grad().reset();
}

inline TrainResult train(model::CausalLM& lm, const std::vector<Example>& examples, const LossFn& loss,
                         const TrainOptions& o, const progress_fn& progress) {
  validate(o);
  if (examples.empty()) throw std::invalid_argument("ordo::train (" + o.label + "): no training examples");
  const auto vocab = lm->config().vocab_size;
  for (std::size_t i = 0; i < examples.size(); ++i)
    data::check_example(examples[i], vocab, o.label + " example " + std::to_string(i));

  const auto n = static_cast<std::int64_t>(examples.size());
  const std::int64_t micro_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const std::int64_t steps_per_epoch = (micro_per_epoch + o.grad_accumulation - 1) / o.grad_accumulation;
  TrainResult r;
  r.total_steps = steps_per_epoch * o.epochs;
  Schedule schedule{o.learning_rate,
                    o.warmup_steps >= 0 ? o.warmup_steps
                                        : static_cast<std::int64_t>(
                                              std::llround(o.warmup_fraction * static_cast<double>(r.total_steps))),
                    r.total_steps, o.decay, o.final_lr_ratio};

  std::vector<torch::Tensor> params;
  for (const auto& p : lm->parameters())
    if (p.requires_grad()) params.push_back(p);
  if (params.empty())
    throw std::invalid_argument("ordo::train (" + o.label + "): the model has no trainable parameters");
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(o.learning_rate)
                                            .betas({o.beta1, o.beta2})
                                            .eps(o.epsilon)
                                            .weight_decay(o.weight_decay));
  // The fused step (fused_adamw.hpp) when this LibTorch's rounding is one it repeats exactly.
  const auto adamw_rounding =
      o.fused_adamw ? probe_adamw_rounding(static_cast<torch::optim::AdamWOptions&>(optimizer.defaults()))
                    : std::nullopt;
  const auto fp = detail::fingerprint(examples, o, lm);
  if (o.group) o.group->require_same("training run (data, options, starting weights)", fp);
  r.checkpoint = o.checkpoint;
  if (r.checkpoint.empty() && !o.checkpoint_dir.empty()) {
    std::uint64_t h = 1469598103934665603ull;
    for (char c : fp) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    std::ostringstream name;
    name << o.label << "-" << std::hex << std::setw(16) << std::setfill('0') << h << ".ckpt";
    r.checkpoint = o.checkpoint_dir / name.str();
  }
  const auto& checkpoint = r.checkpoint;
  if (!checkpoint.empty() && std::filesystem::exists(checkpoint))
    r.start_step = detail::load_checkpoint(checkpoint, lm, optimizer, fp);
  if (o.group)  // every rank resumes from the same step, or none does
    o.group->require_same("resumed step", std::to_string(r.start_step),
                          "the ranks must see the same checkpoint " + checkpoint.string() +
                              " (one machine, or a shared filesystem)");
  r.end_step = r.start_step;

  lm->train();
  const auto device = lm->device();  // batches go where the model is
  // Gradients reduced during the last backward pass of each step (removed at the end).
  std::optional<detail::overlapped_gradients> overlapped;
  if (o.group && o.group->overlap()) overlapped.emplace(params, *o.group, o.group->overlap_bucket_bytes());
  const auto t0 = std::chrono::steady_clock::now();
  auto last_checkpoint = t0;
  std::int64_t epoch_of_order = -1;
  std::vector<std::size_t> order;
  for (std::int64_t step = r.start_step; step < r.total_steps; ++step) {
    const auto epoch = step / steps_per_epoch;
    if (epoch != epoch_of_order) {
      if (o.shuffle) {
        order =
            data::permutation(examples.size(), o.seed + 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(epoch + 1));
      } else {
        order.resize(examples.size());
        std::iota(order.begin(), order.end(), std::size_t{0});
      }
      epoch_of_order = epoch;
    }
    // The window: micro-batches [first, last) of this epoch.
    const auto k = step % steps_per_epoch;
    const auto first = k * o.grad_accumulation, last = std::min(micro_per_epoch, first + o.grad_accumulation);
    std::vector<data::Batch> window;
    bool has_final = false;  // the window holds this rank's share of the step's last micro-batch
    std::int64_t scored = 0;
    const int ranks = o.group ? o.group->size() : 1, rank = o.group ? o.group->rank() : 0;
    for (auto m = first; m < last; ++m) {
      std::vector<Example> part;
      for (auto i = m * o.batch_size; i < std::min(n, (m + 1) * o.batch_size); ++i)
        if ((i - m * o.batch_size) % ranks == rank) part.push_back(examples[order[static_cast<std::size_t>(i)]]);
      if (part.empty()) continue;  // a batch smaller than the group: this rank has no share
      has_final = m + 1 == last;
      window.push_back(data::to_device(data::collate(part, o.pad_id), device));
      scored += window.back().scored_tokens;
    }
    // Whether this rank's last micro-batch of the step runs a backward pass; with every rank's
    // yes, its gradients are reduced while that pass runs (detail::overlapped_gradients).
    const bool last_backward = !window.empty() && window.back().scored_tokens > 0 && has_final;
    bool overlap = false;
    if (o.group) {
      const auto sums = o.group->all_reduce_sum({static_cast<double>(scored), last_backward ? 1.0 : 0.0});
      scored = static_cast<std::int64_t>(sums[0]);
      overlap = overlapped.has_value() && static_cast<int>(sums[1]) == ranks;
    }
    clear_gradients(params);
    double step_loss = 0;
    if (scored > 0) {
      for (std::size_t w = 0; w < window.size(); ++w) {
        const auto& b = window[w];
        if (b.scored_tokens == 0) continue;
        torch::Tensor l;
        {
          AutocastGuard mixed(o.compute_dtype, device.type());
          l = upcast(loss(lm, b)) / static_cast<double>(scored);
        }
        if (overlap && w + 1 == window.size()) overlapped->arm();
        l.backward();
        step_loss += l.item<double>();
        r.tokens += b.real_tokens;
      }
      if (overlap) {
        overlapped->finish();
        step_loss = o.group->all_reduce_sum({step_loss})[0];
      } else if (o.group) {  // the whole batch's gradient and loss on every rank
        torch::NoGradGuard no_grad;
        std::vector<torch::Tensor> grads;
        for (auto& p : params) {
          if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
          grads.push_back(p.grad());
        }
        std::vector<torch::Tensor> on_host;
        for (const auto& g : grads) on_host.push_back(g.to(torch::kCPU, torch::kFloat32));
        o.group->all_reduce_sum(on_host);
        for (std::size_t i = 0; i < grads.size(); ++i)
          if (!on_host[i].is_same(grads[i])) grads[i].copy_(on_host[i]);
        step_loss = o.group->all_reduce_sum({step_loss})[0];
      }
      // Guard: a non-finite loss or gradient leaves the parameters as they are.
      std::vector<torch::Tensor> norms;  // the global L2 norm, as clip_grad_norm_ computes it
      for (const auto& p : params)
        if (p.grad().defined()) norms.push_back(p.grad().norm(2));
      const double norm = norms.empty() ? 0.0 : torch::stack(norms).norm(2).item<double>();
      if (!std::isfinite(step_loss) || !std::isfinite(norm)) {
        clear_gradients(params);
        std::ostringstream msg;
        msg << "ordo::train (" << o.label << "): the " << (std::isfinite(step_loss) ? "gradient norm" : "loss")
            << " is not finite at step " << step + 1 << " of " << r.total_steps << " (loss " << step_loss
            << ", gradient norm " << norm << "); the step was not taken and the model holds the parameters after step "
            << step << (checkpoint.empty() ? std::string() : "; last checkpoint: " + checkpoint.string())
            << ". Lower the learning rate or check the data.";
        throw NonFiniteLoss(msg.str());
      }
      // The clipping's factor, as torch.nn.utils.clip_grad_norm_ computes it; applied by the step.
      const double clip = o.max_grad_norm > 0 && norm > o.max_grad_norm ? o.max_grad_norm / (norm + 1e-6) : 1.0;
      const double lr = schedule.at(step);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      adamw_step(optimizer, clip, adamw_rounding, o.fused_adamw);
    }
    r.losses.push_back(step_loss);
    r.end_step = step + 1;

    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto done = r.end_step - r.start_step;
    std::ostringstream line;
    line << "step " << r.end_step << "/" << r.total_steps << " loss " << std::fixed << std::setprecision(4) << step_loss
         << std::defaultfloat << std::setprecision(3) << " lr " << schedule.at(step) << " "
         << static_cast<long>(static_cast<double>(r.tokens) / std::max(elapsed, 1e-9)) << " tok/s eta "
         << detail::seconds_text(elapsed / static_cast<double>(done) * static_cast<double>(r.total_steps - r.end_step));
    if (progress) progress(o.label, static_cast<double>(r.end_step) / static_cast<double>(r.total_steps), line.str());

    const bool stopping = o.stop_after > 0 && done >= o.stop_after;
    const auto now = std::chrono::steady_clock::now();
    const bool due = (o.checkpoint_every > 0 && r.end_step % o.checkpoint_every == 0) ||
                     (o.checkpoint_seconds > 0 &&
                      std::chrono::duration<double>(now - last_checkpoint).count() >= o.checkpoint_seconds);
    const bool final_step = r.end_step == r.total_steps;
    const bool writer = !o.group || o.group->rank() == 0;  // one writer
    if (writer && !checkpoint.empty() && (final_step ? o.checkpoint_at_end : due || stopping)) {
      detail::save_checkpoint(checkpoint, lm, optimizer, r.end_step, fp);
      last_checkpoint = std::chrono::steady_clock::now();
    }
    if (stopping) break;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  lm->eval();
  return r;
}

/// Plain next-token cross-entropy fine-tuning (the recovery fine-tune after pruning).
inline TrainResult fine_tune(model::CausalLM& lm, const std::vector<Example>& examples, const TrainOptions& options,
                             const progress_fn& progress) {
  return train(
      lm, examples,
      [](model::CausalLM& m, const data::Batch& b) {
        return token_cross_entropy_sum(m->forward(b.ids, b.attention_mask), b.labels);
      },
      options, progress);
}

}  // namespace ordo::train

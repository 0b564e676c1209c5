// tools/device_options.hpp — `--device` and `--dtype`, the same in every ordo tool.
//
//   --device cpu|cuda|cuda:N   where the model runs (default cpu)
//   --dtype float32|bfloat16|float16   what its dense parameters are held in (default float32)
//   --teacher-device D         (tools that distil) the KD teacher's device, default --device
//   --teacher PATH             (tools that distil) the KD teacher, default the base model
//   --train-dtype float32|bfloat16   (tools that train) the precision of the forward passes and
//                              losses of training; default bfloat16 on CUDA, float32 on the CPU
//   --vocab-loss-chunk N       (tools that distil) KD's loss over the vocabulary fused, N rows at
//                              a time (default 0: unfused)
//
// `resolve()` is called before any work: an unknown spelling, or a device this process cannot
// use (a LibTorch without CUDA, no GPU, an index past the last GPU), is one line naming the
// device and the reason; the tool then exits with status 1 having written nothing.
#pragma once

#include <cstdint>  // std::int64_t
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "checks.hpp"  // non_negative

#include <ordo/model/device.hpp>
#include <ordo/model/transform.hpp>  // quantize_head

namespace ordo::tools {

struct device_flags {
  std::string device = "cpu";
  std::string dtype = "float32";

  void add_to(CLI::App& app) {
    app.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
    app.add_option("--dtype", dtype, "float32, bfloat16 or float16: the dtype of the dense parameters")
        ->capture_default_str();
  }
  bool nf4_head = false;
  bool q8_head = false;
  void add_head_to(CLI::App& app) {
    auto* nf4 = app.add_flag("--nf4-head", nf4_head,
                             "multiply the LM head with an NF4 copy of its weight: faster batch-1 decoding, "
                             "logits rounded (~10 % perplexity on SmolLM2-135M; docs/nf4.md)");
    app.add_flag("--q8-head", q8_head,
                 "multiply the LM head with an 8-bit (GGUF Q8_0) copy of its weight: faster batch-1 "
                 "decoding; the same values when the head was Q8_0 already (docs/nf4.md)")
        ->excludes(nf4);
    app.add_flag("--dense-head", dense_head,
                 "multiply the LM head with its dense weight in every product (without it, a head that holds "
                 "Q8_0 values already, as the default model's, decodes from an 8-bit copy of the same values)")
        ->excludes(nf4)
        ->excludes("--q8-head");
  }
  /// --nf4-gemv, for the tools that decode one token at a time (it changes only one-row products:
  /// generation, ordo-perplexity --decode).
  void add_gemv_to(CLI::App& app) {
    app.add_option("--nf4-gemv", nf4_gemv,
                   "exact or int16: the arithmetic of the NF4 GEMV of batch-1 decoding on the CPU (int16: "
                   "faster, ~1e-4 relative error; docs/nf4.md)")
        ->check(CLI::IsMember({"exact", "int16"}))
        ->capture_default_str();
  }
  std::string nf4_gemv = "exact";
  bool dense_head = false;
  bool same_values_q8_head = false;  ///< set by apply_head
  /// The head apply_head gave the model, as the tools' JSON says it: "nf4", "q8_0", "q8_0 (same
  /// values)" (the head held Q8_0 values already, with or without --q8-head) or "dense".
  const char* head_name() const {
    return nf4_head ? "nf4" : same_values_q8_head ? "q8_0 (same values)" : q8_head ? "q8_0" : "dense";
  }
  /// The compact head --nf4-head or --q8-head asked for (ordo::model::quantize_head); without
  /// either (or --dense-head), the 8-bit copy of a head that holds Q8_0 values already
  /// (ordo::model::use_q8_head_if_same_values); and the NF4 GEMV arithmetic of --nf4-gemv
  /// (ordo::model::set_nf4_gemv).
  void apply_head(model::CausalLM lm) {
    if (nf4_head) model::quantize_head(lm, model::head_format::nf4);
    if (q8_head) {
      model::quantize_head(lm, model::head_format::q8_0);
      same_values_q8_head = lm->q8_head->same_values;
    }
    if (!nf4_head && !q8_head && !dense_head) same_values_q8_head = model::use_q8_head_if_same_values(lm);
    model::set_nf4_gemv(lm, model::parse_nf4_gemv(nf4_gemv));
  }

  /// The placement asked for, once checked usable (throws with a one-line message otherwise).
  model::placement resolve() const {
    const model::placement where(model::parse_device(device), model::parse_dtype(dtype));
    model::require_device(where.device);
    model::require_dtype(where.device, where.dtype);
    return where;
  }

  std::string teacher_device;
  std::string teacher_model;
  void add_teacher_to(CLI::App& app) {
    app.add_option("--teacher-device", teacher_device, "put the KD teacher on another device (default: --device)");
    app.add_option("--teacher", teacher_model,
                   "the KD teacher: a .gguf file or Hugging Face directory with the student's tokenizer "
                   "(default: the uncompressed base model)")
        ->check(CLI::ExistingPath);
  }
  std::string train_dtype;  ///< "": the device's default (ordo::study::default_train_dtype)
  void add_train_dtype_to(CLI::App& app) {
    app.add_option("--train-dtype", train_dtype,
                   "float32 or bfloat16: the precision of training's forward passes and losses, fp32 master "
                   "weights either way (default: bfloat16 on CUDA, float32 on the CPU, where bfloat16 pays on "
                   "CPUs with AVX-512 BF16 or AMX; docs/training.md)")
        ->check(CLI::IsMember({"float32", "bfloat16"}));
  }
  /// --vocab-loss-chunk N (the tools that distill: ordo-study, ordo-compress): Context::vocab_loss_chunk.
  std::int64_t vocab_loss_chunk = 0;
  void add_vocab_loss_chunk_to(CLI::App& app) {
    app.add_option("--vocab-loss-chunk", vocab_loss_chunk,
                   "KD: the loss over the vocabulary fused, N rows at a time (faster, less memory, fp32 or bf16 "
                   "training; the trained models' figures differ in the last digits); 0: unfused")
        ->check(non_negative)
        ->capture_default_str();
  }
  /// --train-dtype when given.
  std::optional<torch::ScalarType> chosen_train_dtype() const {
    if (train_dtype.empty()) return std::nullopt;
    return model::parse_dtype(train_dtype);
  }

  /// The teacher's device when one was given, once checked usable (throws like resolve()).
  std::optional<torch::Device> teacher() const {
    if (teacher_device.empty()) return std::nullopt;
    const auto d = model::parse_device(teacher_device);
    model::require_device(d);
    model::require_dtype(d, model::parse_dtype(dtype));  // the teacher is held in --dtype too
    return d;
  }
};

}  // namespace ordo::tools

// ordo/ordo.hpp — all of ordo: every layer's public headers, bottom to top (docs/architecture.md).
// Needs LibTorch, nlohmann-json and PCRE2 (link ordo::models). For the compile-time algebra
// alone, include <ordo/pipeline.hpp>; for the torch-free study executor, <ordo/study.hpp>.
#pragma once

// pipeline: the compile-time algebra
#include <ordo/pipeline.hpp>

// quant: NF4 on the CPU
#include <ordo/quant/nf4_codebook.hpp>
#include <ordo/quant/nf4_cpu.hpp>

// kernels: the CUDA library's host declarations (link ordo::kernels to call them)
#include <ordo/kernels/device.hpp>
#include <ordo/kernels/nf4.hpp>

// io: file formats as bytes
#include <ordo/io/atomic_directory.hpp>
#include <ordo/io/atomic_write.hpp>
#include <ordo/io/gguf.hpp>
#include <ordo/io/hf_directory.hpp>
#include <ordo/io/safetensors.hpp>

// text: tokenizers and chat templates
#include <ordo/text/chat_template.hpp>
#include <ordo/text/tokenizer.hpp>
#include <ordo/text/wordpiece.hpp>

// model: the decoder, its loading and saving, generation
#include <ordo/model/checkpoint.hpp>
#include <ordo/model/dense_model.hpp>
#include <ordo/model/generate.hpp>
#include <ordo/model/language_model.hpp>
#include <ordo/model/load_for_inference.hpp>
#include <ordo/model/quantized_model.hpp>

// data: corpora, examples, splits, batches
#include <ordo/data/batch.hpp>
#include <ordo/data/examples.hpp>
#include <ordo/data/split.hpp>

// eval: perplexity and the clarity metrics, the judge
#include <ordo/eval/fluency.hpp>
#include <ordo/eval/judge.hpp>
#include <ordo/eval/perplexity.hpp>
#include <ordo/eval/readability.hpp>
#include <ordo/eval/sentence_embedding.hpp>

// train: the trainer
#include <ordo/train/trainer.hpp>

// stages: the stages at run time
#include <ordo/stages/distill.hpp>
#include <ordo/stages/prune.hpp>
#include <ordo/stages/quantize.hpp>

// study: the generic executor
#include <ordo/study.hpp>

// paper: the paper's study, clarity, reports
#include <ordo/paper/clarity.hpp>
#include <ordo/paper/paper_study.hpp>
#include <ordo/paper/report.hpp>

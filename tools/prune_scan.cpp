// ordo-prune-scan: how well each pruning importance and allocation keeps a model, and how
// sensitive each layer is to pruning, measured without recovery training.
//
//   ordo-prune-scan --out DIR [--model PATH] [--corpus DIR] [--train-data text|chat] [--chats PATH] [--ratio 0.3]
//                   [--importance paper,activation,wanda,flap,taylor] [--allocation uniform,global]
//                   [--layers] [--layer-importance NAME] [--calibration-samples N] [--seq-len N]
//                   [--eval-tokens N] [--eval-context N] [--eval-stride N] [--seed N] [--threads N] [--device D] [--dtype T]
//                   [--fresh]
//
// Policies: the model is pruned by --ratio with each importance x allocation (prune::prune_ffn,
// no recovery) and its perplexity on the study's held-out documents is measured.
// --layers (sensitivity): each layer alone is pruned by --ratio (by --layer-importance, default
// the first importance) and the perplexity change is measured. Writes DIR/scan.json and, with
// --layers, DIR/sensitivity.svg (a bar per layer, the unpruned perplexity dashed). The data are
// the study's (`ordo-study`): the same split, calibration sequences and evaluation tokens.
//
// Killed, it resumes when run again with the same options and --out: every perplexity is kept in
// OUT/state/measurements/ as soon as it is measured (ordo::study::study_store: the options, the
// lock and the kept figures, as for a study), so a second run measures only what is left and writes the scan.json an
// uninterrupted run writes (times aside); other options are refused, --fresh starts over, and the
// finished scan removes OUT/state/.
#include <chrono>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <ordo/paper/paper_study.hpp>
#include <ordo/paper/report.hpp>
#include <ordo/paper/resume.hpp>  // study_store, file_identity, budget_identity

#include "checks.hpp"
#include "data_options.hpp"
#include "device_options.hpp"

namespace {

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ordo-prune-scan: perplexity after pruning (no recovery) per importance, allocation and layer"};
  std::string model_path, out, importances = "paper,activation,wanda,flap,taylor", allocations = "uniform";
  std::string layer_importance;
  double ratio = 0.3;
  bool layers = false;
  auto options = ordo::study::preset("quick");
  app.add_option("--out", out, "output directory (scan.json, sensitivity.svg)")->required();
  app.add_option("--model", model_path, "a .gguf file or HF directory (default: the embedded model)")->check(ordo::tools::non_empty);
  app.add_option("--ratio", ratio, "share of FFN neurons removed")->check(ordo::tools::within(0.001, 0.999))->capture_default_str();
  app.add_option("--importance", importances, "comma-separated: paper, activation, wanda, flap, taylor")
      ->capture_default_str();
  app.add_option("--allocation", allocations, "comma-separated: uniform, global")->capture_default_str();
  app.add_flag("--layers", layers, "also prune each layer alone and report the perplexity change");
  app.add_option("--layer-importance", layer_importance, "importance for --layers (default: the first)");
  app.add_option("--calibration-samples", options.budget.calibration_samples)
      ->check(ordo::tools::positive)
      ->capture_default_str();
  app.add_option("--seq-len", options.budget.sequence_length)->check(ordo::tools::within(8, 8192))->capture_default_str();
  app.add_option("--eval-tokens", options.eval_tokens)->check(ordo::tools::positive)->capture_default_str();
  app.add_option("--eval-context", options.eval_context)->check(ordo::tools::within(8, 1 << 20))->capture_default_str();
  app.add_option("--eval-stride", options.eval_stride, "sliding-window step (at most --eval-context)")
      ->check(ordo::tools::positive)
      ->capture_default_str();
  app.add_option("--seed", options.seed)->check(ordo::tools::non_negative)->capture_default_str();
  bool fresh = false;
  app.add_flag("--fresh", fresh, "discard an unfinished scan in --out instead of resuming it");
  ordo::tools::add_threads(app, options.threads);
  ordo::tools::device_flags device;
  device.add_to(app);
  ordo::tools::data_flags data_options;
  data_options.add_to(app, /*evaluate=*/false);
  ordo::tools::one_line_errors(app, "ordo-prune-scan");
  if (const auto status = ordo::tools::parse_command_line(app, argc, argv)) return *status;
  namespace fs = std::filesystem;
  try {
    // Everything checked before any work.
    std::vector<ordo::prune::importance_kind> kinds;
    for (const auto& k : split_list(importances)) kinds.push_back(ordo::prune::parse_importance(k));
    std::vector<ordo::prune::allocation_kind> spreads;
    for (const auto& a : split_list(allocations)) spreads.push_back(ordo::prune::parse_allocation(a));
    if (kinds.empty()) throw std::invalid_argument("--importance names no importance");
    if (options.eval_stride > options.eval_context)
      throw std::invalid_argument("--eval-stride (" + std::to_string(options.eval_stride) +
                                  ") must be at most --eval-context (" + std::to_string(options.eval_context) + ")");
    if (spreads.empty()) throw std::invalid_argument("--allocation names no allocation");
    const auto per_layer_kind =
        layer_importance.empty() ? kinds.front() : ordo::prune::parse_importance(layer_importance);
    const auto where = device.resolve();
    const auto sources = data_options.resolve();
    const fs::path out_dir = out;
    ordo::tools::check_output_dir(out_dir);

    options.threads = ordo::tools::resolve_threads(options.threads);
    ordo::tools::warn_if_slow_blas("ordo-prune-scan");
    ordo::io::retain_freed_memory();  // large tensors reuse freed pages (ordo/io/cpu.hpp)
    at::set_num_threads(options.threads);
    torch::manual_seed(options.seed);
    const auto started = std::chrono::steady_clock::now();
    const auto base = ordo::DenseModel::load(model_path, where);
    options.budget.prune_recovery = false;
    auto data = ordo::study::prepare_data(base, sources, options.budget, options.seed);
    auto& context = data.context;
    ordo::study::study_progress progress;
    context.progress = [&](const std::string& what, double f, const std::string& d) { progress.progress(what, f, d); };

    // A killed scan resumes (the header above). The state is opened once the model and the data
    // have loaded, so a bad model or corpus leaves nothing in OUT.
    const nlohmann::json fingerprint = {
        {"model", ordo::study::file_identity(base.source())},
        {"corpus", ordo::study::file_identity(sources.corpus)},
        {"chats", ordo::study::file_identity(sources.chats)},
        {"train_data", data_options.train},
        {"chat_loss", data_options.chat_loss},
        {"ratio", ratio},
        {"budget", ordo::study::budget_identity(options.budget)},
        {"eval_tokens", options.eval_tokens},
        {"eval_context", options.eval_context},
        {"eval_stride", options.eval_stride},
        {"seed", options.seed},
        {"device", ordo::model::device_name(where.device)},
        {"dtype", ordo::model::torch_dtype_name(where.dtype)}};
    ordo::study::study_store store(out_dir, where);
    const bool resumed = store.begin(fingerprint, fresh, {{"threads", options.threads}});
    if (resumed) {
      std::fprintf(stderr, "ordo-prune-scan: resumed the unfinished scan in %s (run %d): %zu measurements kept\n",
                   out_dir.c_str(), store.runs(), store.measurement_count());
      if (const auto note = store.threads_changed(options.threads); !note.empty())
        std::fprintf(stderr, "ordo-prune-scan: %s\n", note.c_str());
    }
    // A measurement by name: read back when an earlier run made it, else made, kept, and only then
    // announced (a run killed after the line was printed has kept what the line says).
    auto measured_unless = [&](std::optional<nlohmann::json> kept, const std::string& key, auto&& measure,
                               auto&& announce) -> nlohmann::json {
      if (kept) return std::move(*kept);
      nlohmann::json j = measure();
      store.keep_measurement(key, j);
      announce(j);
      return j;
    };
    auto measured = [&](const std::string& key, auto&& measure, auto&& announce) -> nlohmann::json {
      return measured_unless(store.measurement(key), key, measure, announce);
    };
    const auto no_announcement = [](const nlohmann::json&) {};

    ordo::eval::perplexity_options pp;
    pp.context = options.eval_context;
    pp.stride = options.eval_stride;
    pp.max_tokens = options.eval_tokens;
    auto score = [&](const ordo::model::CausalLM& lm) {
      auto handle = lm;
      return ordo::eval::perplexity(handle, data.eval_ids, pp).ppl;
    };
    const double base_ppl =
        measured("base", [&] { return nlohmann::json{{"perplexity", score(base.lm())}}; }, no_announcement)["perplexity"]
            .get<double>();
    std::fprintf(stderr, "%sunpruned: perplexity %.3f\n", progress.tty ? "\r\033[K" : "", base_ppl);
    const auto L = static_cast<std::size_t>(base.config().num_layers);

    nlohmann::json report = {{"model", base.source().string()},
                             {"ratio", ratio},
                             {"calibration_samples", context.calibration.size()},
                             {"sequence_length", options.budget.sequence_length},
                             {"eval_tokens", options.eval_tokens},
                             {"eval_context", options.eval_context},
                             {"seed", options.seed},
                             {"train_data", data.summary["train_data"]},
                             {"calibration_source", data.summary["train_source"]},
                             {"base_perplexity", base_ppl},
                             {"policies", nlohmann::json::array()}};
    for (auto kind : kinds)
      for (auto spread : spreads) {
        ordo::prune::Options o;
        o.importance = kind;
        o.allocation = spread;
        o.label = "P[" + std::string(ordo::prune::name(kind)) + "," + std::string(ordo::prune::name(spread)) + "]";
        const auto entry = measured(
            "policy-" + std::string(ordo::prune::name(kind)) + "-" + std::string(ordo::prune::name(spread)), [&] {
              const auto t0 = std::chrono::steady_clock::now();
              ordo::prune::report details;
              auto pruned = ordo::prune::prune_ffn(base.lm(), std::vector<double>(L, ratio), context, &details, o);
              const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              const double ppl = score(pruned);
              return nlohmann::json{{"importance", std::string(ordo::prune::name(kind))},
                                    {"allocation", std::string(ordo::prune::name(spread))},
                                    {"compensated", o.compensates()},
                                    {"perplexity", ppl},
                                    {"ratio_to_base", ppl / base_ppl},
                                    {"widths", details.widths_after},
                                    {"prune_seconds", seconds}};
            },
            [&](const nlohmann::json& j) {
              std::fprintf(stderr, "%s%-24s perplexity %10.3f (%.2fx the unpruned), pruned in %.1f s\n",
                           progress.tty ? "\r\033[K" : "", o.label.c_str(), j["perplexity"].get<double>(),
                           j["ratio_to_base"].get<double>(), j["prune_seconds"].get<double>());
            });
        report["policies"].push_back(entry);
      }

    if (layers) {
      ordo::prune::Options o;
      o.importance = per_layer_kind;
      o.label = "sensitivity";
      // One importance pass for all layers: each layer's scores do not depend on the others' pruning.
      // (None when every layer was measured by an earlier run.)
      const auto layer_key = [&](std::size_t l) {
        return "layer-" + std::string(ordo::prune::name(per_layer_kind)) + "-" + std::to_string(l);
      };
      std::vector<std::optional<nlohmann::json>> kept(L);  // read once, used below
      bool all_kept = true;
      for (std::size_t l = 0; l < L; ++l) {
        kept[l] = store.measurement(layer_key(l));
        all_kept = all_kept && kept[l].has_value();
      }
      const auto scores = all_kept ? std::vector<ordo::prune::layer_importance>{} : ordo::prune::importance(base.lm(), context, o);
      std::vector<double> values;
      std::vector<std::string> names;
      nlohmann::json per_layer = nlohmann::json::array();
      for (std::size_t l = 0; l < L; ++l) {
        const double ppl = measured_unless(std::move(kept[l]), layer_key(l), [&] {
          std::vector<torch::Tensor> keep;
          std::vector<torch::Tensor> means;
          for (std::size_t i = 0; i < L; ++i) {
            const auto width = base.config().intermediate_sizes[i];
            means.push_back(scores[i].input_mean);
            if (i == l) {
              keep.push_back(ordo::prune::select_kept({scores[i]}, {ratio}).front());
            } else {
              keep.push_back(torch::arange(width, torch::kLong));
            }
          }
          auto pruned = ordo::prune::slice_ffn(base.lm(), keep, o.compensates() ? &means : nullptr);
          return nlohmann::json{{"perplexity", score(pruned)}};
        }, [&](const nlohmann::json& j) {
          const double p = j["perplexity"].get<double>();
          std::fprintf(stderr, "%slayer %2zu alone: perplexity %.3f (%+.3f)\n", progress.tty ? "\r\033[K" : "", l, p,
                       p - base_ppl);
        })["perplexity"].get<double>();
        values.push_back(ppl - base_ppl);
        names.push_back(std::to_string(l));
        per_layer.push_back({{"layer", l}, {"perplexity", ppl}, {"change", ppl - base_ppl}});
      }
      report["sensitivity"] = {{"importance", std::string(ordo::prune::name(per_layer_kind))},
                               {"layers", per_layer}};
      fs::create_directories(out_dir);
      const std::string title = "Perplexity change when one layer loses " + std::to_string(ratio * 100).substr(0, 4) +
                                " % of its FFN neurons (" + std::string(ordo::prune::name(per_layer_kind)) + ")";
      ordo::io::write_text(
          out_dir / "sensitivity.svg",
          ordo::study::svg_bars(values, names, title, "layer", "perplexity change", std::nullopt, L > 20 ? 2 : 1));
    }
    report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    fs::create_directories(out_dir);
    report["runs"] = store.runs();  // 2 or more: resumed
    ordo::io::write_text(out_dir / "scan.json", report.dump(2) + "\n");
    store.finish();  // the scan is written: a later run in OUT starts afresh
    std::printf("%s\n", report.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-prune-scan: %s\n", e.what());
    return 1;
  }
}

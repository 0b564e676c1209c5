// ordo/paper/report.hpp — the study's results: a table in the paper's form, results.json,
// results.csv and a size-against-perplexity plot (SVG). Torch-free.
#pragma once

#include <algorithm>    // std::max_element, std::min_element
#include <cmath>        // std::log10, std::isfinite
#include <cstdio>       // std::snprintf
#include <filesystem>   // std::filesystem::path
#include <optional>     // std::optional
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/io/atomic_write.hpp>  // write_file_atomically

namespace ordo::study {

/// One configuration's measured figures.
struct result_row {
  std::string configuration;     // the chain ordo ran, e.g. "Q-D-P-KD-Q"
  std::string paper_name;        // the paper's notation, e.g. "Q-P-KD"; "Base" for the base model
  std::string importance = "paper";  // the pruning score of the series: "paper" (the paper's ten), "flap", ...
  double size_mb = 0;            // bytes of the model's tensors / 2^20 (what its checkpoint stores)
  double perplexity = 0;         // on the held-out evaluation text
  std::optional<double> chat_perplexity;  // on the held-out conversations' assistant replies, when measured
  double nll = 0;                // mean negative log-likelihood per token (nats)
  std::int64_t eval_tokens = 0;  // tokens scored
  double compression_ratio = 0;  // base size / size
  double stage_seconds = 0;      // time of the stages on this configuration's chain
  double eval_seconds = 0;
  // The answer-quality metrics (study/clarity.hpp), when measured; each in [0, 1].
  std::optional<double> clarity, fluency, coherence, readability;
  std::optional<double> geval_correctness, prompt_alignment;  // with an LLM judge
  nlohmann::json extra = nlohmann::json::object();            // further metrics, by name
};

namespace detail {

inline std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

inline std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  io::write_file_atomically(
      path, [&](io::AtomicSink& sink) { sink.write(std::as_bytes(std::span<const char>(text.data(), text.size()))); });
}

}  // namespace detail

namespace detail {
inline std::string opt(const std::optional<double>& v, int digits) { return v ? fixed(*v, digits) : "-"; }
template <class F>
bool any_row(std::span<const result_row> rows, F f) {
  for (const auto& r : rows)
    if (f(r)) return true;
  return false;
}
}  // namespace detail

/// The table in the paper's form (Markdown): model, the judge metrics when measured, clarity
/// and its parts when measured, size, perplexity, compression, time.
inline std::string markdown_table(std::span<const result_row> rows) {
  const bool judge = detail::any_row(rows, [](const result_row& r) { return r.geval_correctness.has_value(); });
  const bool clarity = detail::any_row(rows, [](const result_row& r) { return r.clarity.has_value(); });
  const bool series = detail::any_row(rows, [](const result_row& r) { return r.importance != "paper"; });
  const bool chats = detail::any_row(rows, [](const result_row& r) { return r.chat_perplexity.has_value(); });
  std::string head = "| Model | Chain |", rule = "|---|---|";
  if (series) head += " Importance |", rule += "---|";
  if (judge) head += " G-Eval | Prompt alignment |", rule += "---:|---:|";
  if (clarity) head += " Clarity | Fluency | Coherence | Readability |", rule += "---:|---:|---:|---:|";
  head += std::string(" Size (MB) | Perplexity |") + (chats ? " Chat perplexity |" : "") + " Compression | Stage time (s) |\n";
  rule += std::string("---:|---:|") + (chats ? "---:|" : "") + "---:|---:|\n";
  std::string out = head + rule;
  for (const auto& r : rows) {
    out += "| " + r.paper_name + " | " + r.configuration + " | ";
    if (series) out += r.importance + " | ";
    if (judge) out += detail::opt(r.geval_correctness, 3) + " | " + detail::opt(r.prompt_alignment, 3) + " | ";
    if (clarity)
      out += detail::opt(r.clarity, 3) + " | " + detail::opt(r.fluency, 3) + " | " + detail::opt(r.coherence, 3) +
             " | " + detail::opt(r.readability, 3) + " | ";
    out += detail::fixed(r.size_mb, 2) + " | " + detail::fixed(r.perplexity, 3) + " | ";
    if (chats) out += detail::opt(r.chat_perplexity, 3) + " | ";
    out += detail::fixed(r.compression_ratio, 2) + "x | " + detail::fixed(r.stage_seconds, 1) + " |\n";
  }
  return out;
}

inline nlohmann::json to_json(const result_row& r) {
  nlohmann::json j = {{"configuration", r.configuration},
                      {"paper_name", r.paper_name},
                      {"importance", r.importance},
                      {"size_mb", r.size_mb},
                      {"perplexity", r.perplexity},
                      {"nll", r.nll},
                      {"eval_tokens", r.eval_tokens},
                      {"compression_ratio", r.compression_ratio},
                      {"stage_seconds", r.stage_seconds},
                      {"eval_seconds", r.eval_seconds}};
  auto put = [&](const char* k, const std::optional<double>& v) {
    if (v) j[k] = std::isfinite(*v) ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  put("chat_perplexity", r.chat_perplexity);
  put("clarity", r.clarity);
  put("fluency", r.fluency);
  put("coherence", r.coherence);
  put("readability", r.readability);
  put("geval_correctness", r.geval_correctness);
  put("prompt_alignment", r.prompt_alignment);
  for (const auto& [k, v] : r.extra.items()) j[k] = v;
  return j;
}

/// One row per configuration; the metric columns are always present (empty when not measured).
inline std::string csv(std::span<const result_row> rows) {
  std::string out =
      "configuration,paper_name,size_mb,perplexity,nll,eval_tokens,compression_ratio,stage_seconds,eval_seconds,"
      "clarity,fluency,coherence,readability,geval_correctness,prompt_alignment,importance,chat_perplexity\n";
  auto cell = [](const std::optional<double>& v) {
    return v && std::isfinite(*v) ? detail::fixed(*v, 6) : std::string();
  };
  for (const auto& r : rows) {
    out += r.configuration + "," + r.paper_name + "," + detail::fixed(r.size_mb, 4) + "," +
           detail::fixed(r.perplexity, 6) + "," + detail::fixed(r.nll, 6) + "," + std::to_string(r.eval_tokens) + "," +
           detail::fixed(r.compression_ratio, 4) + "," + detail::fixed(r.stage_seconds, 3) + "," +
           detail::fixed(r.eval_seconds, 3) + "," + cell(r.clarity) + "," + cell(r.fluency) + "," + cell(r.coherence) +
           "," + cell(r.readability) + "," + cell(r.geval_correctness) + "," + cell(r.prompt_alignment) + "," +
           r.importance + "," + cell(r.chat_perplexity) + "\n";
  }
  return out;
}

/// A scatter plot of size (x, MB) against perplexity (y, log scale), each point labelled; one
/// colour per series (result_row::importance) with a legend when there is more than one.
inline std::string svg_plot(std::span<const result_row> rows, std::string_view title) {
  const double W = 760, H = 480, left = 80, right = 30, top = 50, bottom = 60;
  std::vector<double> xs, ys;
  for (const auto& r : rows) {
    xs.push_back(r.size_mb);
    ys.push_back(std::log10(std::max(r.perplexity, 1e-9)));
  }
  auto span_of = [](const std::vector<double>& v, double pad_fraction) {
    double lo = v.empty() ? 0 : *std::min_element(v.begin(), v.end());
    double hi = v.empty() ? 1 : *std::max_element(v.begin(), v.end());
    if (hi - lo < 1e-9) {
      lo -= 0.5;
      hi += 0.5;
    }
    const double pad = (hi - lo) * pad_fraction;
    return std::pair{lo - pad, hi + pad};
  };
  const auto [x0, x1] = span_of(xs, 0.08);
  const auto [y0, y1] = span_of(ys, 0.12);
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + detail::fixed(W, 0) + "\" height=\"" +
                  detail::fixed(H, 0) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + detail::fixed(W / 2, 0) + "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" +
       detail::xml_escape(title) + "</text>\n";
  s += "<line x1=\"" + detail::fixed(left, 0) + "\" y1=\"" + detail::fixed(H - bottom, 0) + "\" x2=\"" +
       detail::fixed(W - right, 0) + "\" y2=\"" + detail::fixed(H - bottom, 0) + "\" stroke=\"black\"/>\n";
  s += "<line x1=\"" + detail::fixed(left, 0) + "\" y1=\"" + detail::fixed(top, 0) + "\" x2=\"" +
       detail::fixed(left, 0) + "\" y2=\"" + detail::fixed(H - bottom, 0) + "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {  // axis ticks
    const double x = x0 + (x1 - x0) * i / 4, y = y0 + (y1 - y0) * i / 4;
    s += "<text x=\"" + detail::fixed(px(x), 1) + "\" y=\"" + detail::fixed(H - bottom + 18, 0) +
         "\" text-anchor=\"middle\">" + detail::fixed(x, 1) + "</text>\n";
    s += "<text x=\"" + detail::fixed(left - 8, 0) + "\" y=\"" + detail::fixed(py(y) + 4, 1) +
         "\" text-anchor=\"end\">" + detail::fixed(std::pow(10.0, y), 2) + "</text>\n";
  }
  s += "<text x=\"" + detail::fixed((left + W - right) / 2, 0) + "\" y=\"" + detail::fixed(H - 18, 0) +
       "\" text-anchor=\"middle\">model size (MB)</text>\n";
  s += "<text x=\"18\" y=\"" + detail::fixed((top + H - bottom) / 2, 0) +
       "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " + detail::fixed((top + H - bottom) / 2, 0) +
       ")\">perplexity (log scale)</text>\n";
  std::vector<std::string> series;
  for (const auto& r : rows)
    if (std::find(series.begin(), series.end(), r.importance) == series.end()) series.push_back(r.importance);
  static constexpr const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"};
  auto colour_of = [&](const std::string& name) {
    const auto at = static_cast<std::size_t>(std::find(series.begin(), series.end(), name) - series.begin());
    return colours[at % 5];
  };
  if (series.size() > 1)
    for (std::size_t k = 0; k < series.size(); ++k) {
      const double ly = top + 14.0 * static_cast<double>(k);
      s += "<circle cx=\"" + detail::fixed(W - right - 150, 0) + "\" cy=\"" + detail::fixed(ly, 0) +
           "\" r=\"5\" fill=\"" + colour_of(series[k]) + "\"/>\n";
      s += "<text x=\"" + detail::fixed(W - right - 140, 0) + "\" y=\"" + detail::fixed(ly + 4, 0) + "\">" +
           (series[k] == "paper" ? std::string("paper's score") : detail::xml_escape(series[k]) + " score") +
           "</text>\n";
    }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double cx = px(xs[i]), cy = py(ys[i]);
    s += "<circle cx=\"" + detail::fixed(cx, 1) + "\" cy=\"" + detail::fixed(cy, 1) + "\" r=\"5\" fill=\"" +
         colour_of(rows[i].importance) + "\"/>\n";
    s += "<text x=\"" + detail::fixed(cx + 8, 1) + "\" y=\"" + detail::fixed(cy - 6 + 13.0 * (i % 2), 1) + "\">" +
         detail::xml_escape(rows[i].paper_name) + " (" + detail::fixed(rows[i].perplexity, 2) + ")</text>\n";
  }
  s += "</svg>\n";
  return s;
}

/// A bar chart: one bar per value, labelled below by `labels` (every `label_every`-th), the
/// y axis linear from min(0, lowest) to the highest value, a dashed line at `reference` when
/// given (e.g. the unpruned model's perplexity).
inline std::string svg_bars(std::span<const double> values, std::span<const std::string> labels,
                            std::string_view title, std::string_view x_label, std::string_view y_label,
                            std::optional<double> reference = std::nullopt, std::size_t label_every = 1) {
  const double W = 760, H = 420, left = 80, right = 30, top = 50, bottom = 60;
  double lo = 0, hi = reference.value_or(0);
  for (double v : values) lo = std::min(lo, v), hi = std::max(hi, v);
  if (hi - lo < 1e-12) hi = lo + 1;
  hi += (hi - lo) * 0.05;
  const double n = static_cast<double>(std::max<std::size_t>(values.size(), 1));
  const double slot = (W - left - right) / n;
  auto py = [&](double y) { return H - bottom - (y - lo) / (hi - lo) * (H - top - bottom); };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + detail::fixed(W, 0) + "\" height=\"" +
                  detail::fixed(H, 0) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + detail::fixed(W / 2, 0) + "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" +
       detail::xml_escape(title) + "</text>\n";
  for (int i = 0; i <= 4; ++i) {
    const double y = lo + (hi - lo) * i / 4;
    s += "<line x1=\"" + detail::fixed(left, 0) + "\" y1=\"" + detail::fixed(py(y), 1) + "\" x2=\"" +
         detail::fixed(W - right, 0) + "\" y2=\"" + detail::fixed(py(y), 1) + "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + detail::fixed(left - 8, 0) + "\" y=\"" + detail::fixed(py(y) + 4, 1) +
         "\" text-anchor=\"end\">" + detail::fixed(y, 1) + "</text>\n";
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double x = left + slot * static_cast<double>(i) + slot * 0.15;
    const double y = py(std::max(values[i], 0.0)), y0 = py(std::min(values[i], 0.0));
    s += "<rect x=\"" + detail::fixed(x, 1) + "\" y=\"" + detail::fixed(y, 1) + "\" width=\"" +
         detail::fixed(slot * 0.7, 1) + "\" height=\"" + detail::fixed(std::max(y0 - y, 0.5), 1) +
         "\" fill=\"#1f77b4\"/>\n";
    if (i < labels.size() && i % std::max<std::size_t>(label_every, 1) == 0)
      s += "<text x=\"" + detail::fixed(x + slot * 0.35, 1) + "\" y=\"" + detail::fixed(H - bottom + 16, 0) +
           "\" text-anchor=\"middle\">" + detail::xml_escape(labels[i]) + "</text>\n";
  }
  if (reference)
    s += "<line x1=\"" + detail::fixed(left, 0) + "\" y1=\"" + detail::fixed(py(*reference), 1) + "\" x2=\"" +
         detail::fixed(W - right, 0) + "\" y2=\"" + detail::fixed(py(*reference), 1) +
         "\" stroke=\"#d62728\" stroke-dasharray=\"6 4\"/>\n";
  s += "<line x1=\"" + detail::fixed(left, 0) + "\" y1=\"" + detail::fixed(py(lo), 1) + "\" x2=\"" +
       detail::fixed(W - right, 0) + "\" y2=\"" + detail::fixed(py(lo), 1) + "\" stroke=\"black\"/>\n";
  s += "<text x=\"" + detail::fixed((left + W - right) / 2, 0) + "\" y=\"" + detail::fixed(H - 18, 0) +
       "\" text-anchor=\"middle\">" + detail::xml_escape(x_label) + "</text>\n";
  s += "<text x=\"18\" y=\"" + detail::fixed((top + H - bottom) / 2, 0) +
       "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " + detail::fixed((top + H - bottom) / 2, 0) + ")\">" +
       detail::xml_escape(y_label) + "</text>\n";
  s += "</svg>\n";
  return s;
}

/// Writes results.json (with `meta`), results.csv, results.md and size_vs_perplexity.svg into
/// `dir`, each atomically.
inline void write_reports(const std::filesystem::path& dir, std::span<const result_row> rows,
                          const nlohmann::json& meta, std::string_view title) {
  std::filesystem::create_directories(dir);
  nlohmann::json j = {{"meta", meta}, {"results", nlohmann::json::array()}};
  for (const auto& r : rows) j["results"].push_back(to_json(r));
  detail::write_text(dir / "results.json", j.dump(2) + "\n");
  detail::write_text(dir / "results.csv", csv(rows));
  detail::write_text(dir / "results.md", markdown_table(rows));
  detail::write_text(dir / "size_vs_perplexity.svg", svg_plot(rows, title));
}

}  // namespace ordo::study

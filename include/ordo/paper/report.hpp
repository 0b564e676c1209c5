// ordo/paper/report.hpp — the study's results: a table in the paper's form, results.json,
// results.csv and a size-against-perplexity plot (SVG). Torch-free.
#pragma once

#include <algorithm>    // std::max_element, std::min_element
#include <cmath>        // std::log10, std::isfinite
#include <cstdio>       // std::snprintf
#include <filesystem>   // std::filesystem::path
#include <iterator>     // std::begin, std::end
#include <limits>       // std::numeric_limits
#include <stdexcept>    // std::invalid_argument
#include <optional>     // std::optional
#include <span>         // std::span
#include <string>       // std::string
#include <string_view>  // std::string_view
#include <vector>       // std::vector

#include <nlohmann/json.hpp>  // nlohmann::json

#include <ordo/io/atomic_directory.hpp>  // write_text (atomic)

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

/// The row `to_json` wrote (a key it does not know goes back into `extra`); throws
/// std::invalid_argument naming the first missing or mistyped key.
inline result_row row_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("a result row must be a JSON object");
  result_row r;
  auto need = [&](const char* k) -> const nlohmann::json& {
    if (!j.contains(k)) throw std::invalid_argument(std::string("a result row lacks '") + k + "'");
    return j[k];
  };
  auto number = [&](const char* k) {
    const auto& v = need(k);
    if (!v.is_number()) throw std::invalid_argument(std::string("a result row's '") + k + "' is not a number");
    return v.get<double>();
  };
  auto text = [&](const char* k) {
    const auto& v = need(k);
    if (!v.is_string()) throw std::invalid_argument(std::string("a result row's '") + k + "' is not a string");
    return v.get<std::string>();
  };
  auto maybe = [&](const char* k, std::optional<double>& out) {
    if (!j.contains(k)) return;
    const auto& v = j[k];
    if (v.is_null()) out = std::numeric_limits<double>::quiet_NaN();  // to_json writes a NaN as null
    else if (v.is_number()) out = v.get<double>();
    else throw std::invalid_argument(std::string("a result row's '") + k + "' is not a number");
  };
  r.configuration = text("configuration");
  r.paper_name = text("paper_name");
  r.importance = text("importance");
  r.size_mb = number("size_mb");
  r.perplexity = number("perplexity");
  r.nll = number("nll");
  const auto& tokens = need("eval_tokens");
  if (!tokens.is_number_integer()) throw std::invalid_argument("a result row's 'eval_tokens' is not an integer");
  r.eval_tokens = tokens.get<std::int64_t>();
  r.compression_ratio = number("compression_ratio");
  r.stage_seconds = number("stage_seconds");
  r.eval_seconds = number("eval_seconds");
  maybe("chat_perplexity", r.chat_perplexity);
  maybe("clarity", r.clarity);
  maybe("fluency", r.fluency);
  maybe("coherence", r.coherence);
  maybe("readability", r.readability);
  maybe("geval_correctness", r.geval_correctness);
  maybe("prompt_alignment", r.prompt_alignment);
  static const char* known[] = {"configuration", "paper_name",      "importance",  "size_mb",   "perplexity",
                                "nll",           "eval_tokens",     "compression_ratio", "stage_seconds",
                                "eval_seconds",  "chat_perplexity", "clarity",     "fluency",   "coherence",
                                "readability",   "geval_correctness", "prompt_alignment"};
  for (const auto& [k, v] : j.items())
    if (std::find(std::begin(known), std::end(known), k) == std::end(known)) r.extra[k] = v;
  return r;
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

namespace detail::plot {

/// An axis-aligned rectangle in SVG coordinates (y grows downwards).
struct box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  bool overlaps(const box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
  bool inside(const box& o) const { return x0 >= o.x0 && x1 <= o.x1 && y0 >= o.y0 && y1 <= o.y1; }
};

/// Characters of UTF-8 text (continuation bytes not counted).
inline std::size_t characters(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

/// A generous width of `s` in a sans-serif font of `size` px: 0.64 em a character, wider than
/// DejaVu Sans' digits (0.636 em) and Liberation Sans' capitals on average.
inline double text_width(std::string_view s, double size) { return 0.64 * size * static_cast<double>(characters(s)); }

/// The box of text drawn at (x, baseline y) with `anchor` "start", "middle" or "end".
inline box text_box(double x, double y, std::string_view text, double size, std::string_view anchor) {
  const double w = text_width(text, size);
  const double left = anchor == "end" ? x - w : anchor == "middle" ? x - w / 2 : x;
  return {left, y - 0.8 * size, left + w, y + 0.25 * size};
}

/// Round steps (1, 2 or 5 times a power of ten) covering [lo, hi] with about `target` intervals.
inline std::vector<double> linear_ticks(double lo, double hi, int target = 5) {
  const double raw = (hi - lo) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double step = (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * magnitude;
  std::vector<double> ticks;
  for (double t = std::floor(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(t);
  if (ticks.back() < hi - step * 1e-9) ticks.push_back(ticks.back() + step);
  return ticks;
}

/// Round values (1, 2, 5 per decade, denser for a narrow range; round linear steps for a very
/// narrow one) within [10^lo, 10^hi].
inline std::vector<double> log_ticks(double lo, double hi) {
  static const std::vector<std::vector<double>> sets = {
      {1}, {1, 2, 5}, {1, 1.5, 2, 3, 5, 7}, {1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9}};
  std::vector<double> ticks;
  for (const auto& mantissas : sets) {
    if (mantissas.size() == 1 && hi - lo < 3) continue;  // decades only for a wide range
    ticks.clear();
    for (double d = std::floor(lo); d <= std::ceil(hi); d += 1)
      for (double m : mantissas) {
        const double v = m * std::pow(10.0, d);
        if (std::log10(v) >= lo - 1e-12 && std::log10(v) <= hi + 1e-12) ticks.push_back(v);
      }
    if (ticks.size() >= 4) break;
  }
  if (ticks.size() < 3) {  // a range narrower than 1 to 1.2: round linear steps within it
    ticks.clear();
    for (double v : linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi), 4))
      if (v > 0 && std::log10(v) >= lo - 1e-12 && std::log10(v) <= hi + 1e-12) ticks.push_back(v);
  }
  return ticks;
}

/// A tick value as people write it: 150, 2.5, 0.02, 20000.
inline std::string tick_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// A figure with four significant digits: 41.99, 665.8, 1216, 12345.
inline std::string figure_text(double v) {
  if (!std::isfinite(v)) return "nan";
  char buf[32];
  if (std::fabs(v) >= 1000) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

/// The marker of series k: a circle, a square, a triangle, a diamond, then again.
inline std::string marker(std::size_t k, double cx, double cy, const std::string& colour) {
  const std::string fill = "\" fill=\"" + colour + "\"/>\n";
  switch (k % 4) {
    case 0: return "<circle cx=\"" + fixed(cx, 1) + "\" cy=\"" + fixed(cy, 1) + "\" r=\"5" + fill;
    case 1:
      return "<rect x=\"" + fixed(cx - 4.5, 1) + "\" y=\"" + fixed(cy - 4.5, 1) + "\" width=\"9\" height=\"9" + fill;
    case 2:
      return "<polygon points=\"" + fixed(cx, 1) + "," + fixed(cy - 6, 1) + " " + fixed(cx + 5.5, 1) + "," +
             fixed(cy + 4, 1) + " " + fixed(cx - 5.5, 1) + "," + fixed(cy + 4, 1) + fill;
    default:
      return "<polygon points=\"" + fixed(cx, 1) + "," + fixed(cy - 6, 1) + " " + fixed(cx + 6, 1) + "," + fixed(cy, 1) +
             " " + fixed(cx, 1) + "," + fixed(cy + 6, 1) + " " + fixed(cx - 6, 1) + "," + fixed(cy, 1) + fill;
  }
}

}  // namespace detail::plot

/// A scatter plot of size (x, MB) against perplexity (y, log scale) with round ticks; each point
/// labelled with its name and perplexity, labels placed where they overlap no other label, point
/// or the legend (moved away along a leader line when a cluster needs it); one colour and marker
/// shape per series (result_row::importance) with a legend above the plot when there is more than
/// one. Text sizes are estimated generously (detail::plot::text_width); the tests render the file
/// with a real SVG renderer.
inline std::string svg_plot(std::span<const result_row> rows, std::string_view title) {
  namespace pl = detail::plot;
  using detail::fixed;
  const double W = 800, H = 520, left = 80, right = 30, top = 72, bottom = 60, font = 12;
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
  const auto [xlo, xhi] = span_of(xs, 0.1);
  const auto x_ticks = pl::linear_ticks(xlo, xhi);
  const double x0 = x_ticks.front(), x1 = x_ticks.back();  // the axis ends on ticks
  const auto [y0, y1] = span_of(ys, 0.12);
  const auto y_ticks = pl::log_ticks(y0, y1);
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(W, 0) + "\" height=\"" + fixed(H, 0) +
                  "\" viewBox=\"0 0 " + fixed(W, 0) + " " + fixed(H, 0) +
                  "\" font-family=\"DejaVu Sans, Liberation Sans, Arial, sans-serif\" font-size=\"" + fixed(font, 0) +
                  "\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + fixed(W / 2, 0) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"15\">" +
       detail::xml_escape(title) + "</text>\n";
  // Grid, axes, ticks.
  for (double t : x_ticks) {
    const double x = px(t);
    s += "<line x1=\"" + fixed(x, 1) + "\" y1=\"" + fixed(top, 0) + "\" x2=\"" + fixed(x, 1) + "\" y2=\"" +
         fixed(H - bottom, 0) + "\" stroke=\"#e5e5e5\"/>\n";
    s += "<text x=\"" + fixed(x, 1) + "\" y=\"" + fixed(H - bottom + 18, 0) + "\" text-anchor=\"middle\">" +
         pl::tick_text(t) + "</text>\n";
  }
  for (double t : y_ticks) {
    const double y = py(std::log10(t));
    s += "<line x1=\"" + fixed(left, 0) + "\" y1=\"" + fixed(y, 1) + "\" x2=\"" + fixed(W - right, 0) + "\" y2=\"" +
         fixed(y, 1) + "\" stroke=\"#e5e5e5\"/>\n";
    s += "<text x=\"" + fixed(left - 8, 0) + "\" y=\"" + fixed(y + 4, 1) + "\" text-anchor=\"end\">" +
         pl::tick_text(t) + "</text>\n";
  }
  s += "<line x1=\"" + fixed(left, 0) + "\" y1=\"" + fixed(H - bottom, 0) + "\" x2=\"" + fixed(W - right, 0) +
       "\" y2=\"" + fixed(H - bottom, 0) + "\" stroke=\"black\"/>\n";
  s += "<line x1=\"" + fixed(left, 0) + "\" y1=\"" + fixed(top, 0) + "\" x2=\"" + fixed(left, 0) + "\" y2=\"" +
       fixed(H - bottom, 0) + "\" stroke=\"black\"/>\n";
  s += "<text x=\"" + fixed((left + W - right) / 2, 0) + "\" y=\"" + fixed(H - 18, 0) +
       "\" text-anchor=\"middle\">model size (MB)</text>\n";
  s += "<text x=\"20\" y=\"" + fixed((top + H - bottom) / 2, 0) + "\" text-anchor=\"middle\" transform=\"rotate(-90 20 " +
       fixed((top + H - bottom) / 2, 0) + ")\">perplexity (log scale)</text>\n";

  // Series: a colour and a marker each; a legend in the band between the title and the plot.
  std::vector<std::string> series;
  for (const auto& r : rows)
    if (std::find(series.begin(), series.end(), r.importance) == series.end()) series.push_back(r.importance);
  static constexpr const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"};
  auto series_of = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(series.begin(), series.end(), name) - series.begin());
  };
  if (series.size() > 1) {
    double lx = left + 10;
    for (std::size_t k = 0; k < series.size(); ++k) {
      const std::string text = series[k] == "paper" ? std::string("paper's score") : series[k] + " score";
      s += pl::marker(k, lx, 48, colours[k % 5]);
      s += "<text x=\"" + fixed(lx + 10, 0) + "\" y=\"52\">" + detail::xml_escape(text) + "</text>\n";
      lx += 10 + pl::text_width(text, font) + 24;
    }
  }

  // Points, then labels: each at the first place, nearest first, that stays in the plot and
  // overlaps no label or point placed before.
  const pl::box area{left + 1, top, W - right, H - bottom - 1};
  std::vector<pl::box> taken;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double cx = px(xs[i]), cy = py(ys[i]);
    taken.push_back({cx - 6, cy - 6, cx + 6, cy + 6});
    s += pl::marker(series_of(rows[i].importance), cx, cy, colours[series_of(rows[i].importance) % 5]);
  }
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ys[a] > ys[b]; });
  for (std::size_t i : order) {
    const double cx = px(xs[i]), cy = py(ys[i]);
    const std::string text = rows[i].paper_name + " (" + pl::figure_text(rows[i].perplexity) + ")";
    struct candidate {
      double x, y;
      const char* anchor;
      bool leader;
    };
    std::vector<candidate> candidates = {{cx + 9, cy + 4, "start", false},
                                         {cx - 9, cy + 4, "end", false},
                                         {cx, cy - 10, "middle", false},
                                         {cx, cy + 19, "middle", false}};
    // Labels are placed top down: those above are taken, so below comes first (leaders then
    // do not cross).
    for (int ring = 1; ring <= 16; ++ring)
      for (double dy : {15.0 * ring, -15.0 * ring})
        for (double dx : {22.0, -22.0, 60.0, -60.0})
          candidates.push_back({cx + dx, cy + 4 + dy, dx > 0 ? "start" : "end", true});
    std::optional<candidate> chosen;
    pl::box chosen_box;
    for (const auto& c : candidates) {
      const auto b = pl::text_box(c.x, c.y, text, font, c.anchor);
      const pl::box padded{b.x0 - 2, b.y0 - 1, b.x1 + 2, b.y1 + 1};
      if (!padded.inside(area)) continue;
      if (std::any_of(taken.begin(), taken.end(), [&](const pl::box& t) { return t.overlaps(padded); })) continue;
      chosen = c;
      chosen_box = padded;
      break;
    }
    if (!chosen) {  // nowhere free: beside the point, as before
      chosen = candidates.front();
      chosen_box = pl::text_box(chosen->x, chosen->y, text, font, chosen->anchor);
    }
    taken.push_back(chosen_box);
    if (chosen->leader) {
      const double lx = std::string_view(chosen->anchor) == "start" ? chosen->x - 2 : chosen->x + 2;
      s += "<line x1=\"" + fixed(cx, 1) + "\" y1=\"" + fixed(cy, 1) + "\" x2=\"" + fixed(lx, 1) + "\" y2=\"" +
           fixed(chosen->y - 4, 1) + "\" stroke=\"#999999\" stroke-width=\"0.8\"/>\n";
    }
    s += "<text x=\"" + fixed(chosen->x, 1) + "\" y=\"" + fixed(chosen->y, 1) + "\" text-anchor=\"" +
         chosen->anchor + "\">" + detail::xml_escape(text) + "</text>\n";
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
  io::write_text(dir / "results.json", j.dump(2) + "\n");
  io::write_text(dir / "results.csv", csv(rows));
  io::write_text(dir / "results.md", markdown_table(rows));
  io::write_text(dir / "size_vs_perplexity.svg", svg_plot(rows, title));
}

}  // namespace ordo::study

// The study's reports: table, CSV, JSON and plot from result rows.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ordo/paper/report.hpp>

#include "../test_support.hpp"

namespace {
std::vector<ordo::study::result_row> rows() {
  // Assigned member by member: the optional metrics have no default member initializers, so a
  // braced list that leaves them out draws -Wmissing-field-initializers.
  auto row = [](std::string configuration, std::string paper_name, double size_mb, double perplexity, double nll,
                double compression_ratio, double stage_seconds, double eval_seconds) {
    ordo::study::result_row r;
    r.configuration = std::move(configuration);
    r.paper_name = std::move(paper_name);
    r.size_mb = size_mb;
    r.perplexity = perplexity;
    r.nll = nll;
    r.eval_tokens = 1000;
    r.compression_ratio = compression_ratio;
    r.stage_seconds = stage_seconds;
    r.eval_seconds = eval_seconds;
    return r;
  };
  auto base = row("base", "Base", 256.0, 10.5, 2.35, 1.0, 0.0, 3.0);
  auto best = row("P-KD-Q", "P-KD-Q", 70.0, 12.25, 2.5, 256.0 / 70.0, 42.0, 1.5);
  best.extra["note"] = "x<y";
  return {base, best};
}
std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("the table has the paper's columns and one line per configuration") {
  const auto r = rows();
  const auto table = ordo::study::markdown_table(r);
  CHECK(table.find("| Model | Chain | Size (MB) | Perplexity | Compression |") == 0);
  CHECK(table.find("| Base | base | 256.00 | 10.500 | 1.00x | 0.0 |") != std::string::npos);
  CHECK(table.find("| P-KD-Q | P-KD-Q | 70.00 | 12.250 | 3.66x | 42.0 |") != std::string::npos);
}

TEST_CASE("results.json, results.csv, results.md and the SVG are written") {
  const auto dir = std::filesystem::temp_directory_path() / "ordo-test-report";
  std::filesystem::remove_all(dir);
  const auto r = rows();
  ordo::study::write_reports(dir, r, {{"model", "tiny"}}, "test <plot>");
  const auto j = nlohmann::json::parse(slurp(dir / "results.json"));
  CHECK(j["meta"]["model"] == "tiny");
  REQUIRE(j["results"].size() == 2);
  CHECK(j["results"][1]["configuration"] == "P-KD-Q");
  CHECK(j["results"][1]["perplexity"] == doctest::Approx(12.25));
  CHECK(j["results"][1]["note"] == "x<y");
  const auto csv = slurp(dir / "results.csv");
  CHECK(csv.find("configuration,paper_name,size_mb,perplexity") == 0);
  CHECK(csv.find("P-KD-Q,P-KD-Q,70.0000,12.250000,") != std::string::npos);
  const auto svg = slurp(dir / "size_vs_perplexity.svg");
  CHECK(svg.find("<svg") == 0);
  CHECK(svg.find("test &lt;plot&gt;") != std::string::npos);  // escaped
  CHECK(svg.find("P-KD-Q (12.25)") != std::string::npos);
  CHECK(svg.find("<circle") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the answer-quality columns appear when measured, '-' where a row lacks them") {
  auto r = rows();
  r[1].clarity = 0.5;
  r[1].fluency = 0.25;
  r[1].coherence = 0.75;
  r[1].readability = 0.5;
  auto table = ordo::study::markdown_table(r);
  CHECK(table.find("| Model | Chain | Clarity | Fluency | Coherence | Readability | Size (MB) |") == 0);
  CHECK(table.find("| P-KD-Q | P-KD-Q | 0.500 | 0.250 | 0.750 | 0.500 | 70.00 |") != std::string::npos);
  CHECK(table.find("| Base | base | - | - | - | - | 256.00 |") != std::string::npos);
  CHECK(table.find("G-Eval") == std::string::npos);  // no judge, no judge columns
  r[0].geval_correctness = 0.9;
  r[0].prompt_alignment = 0.8;
  table = ordo::study::markdown_table(r);
  CHECK(table.find("| Model | Chain | G-Eval | Prompt alignment | Clarity |") == 0);
  CHECK(table.find("| Base | base | 0.900 | 0.800 | - |") != std::string::npos);
  const auto csv = ordo::study::csv(r);
  CHECK(csv.find(",clarity,fluency,coherence,readability,geval_correctness,prompt_alignment,importance,chat_perplexity\n") != std::string::npos);
  CHECK(csv.find(",0.900000,0.800000,paper,\n") != std::string::npos);
  CHECK(csv.find(",0.500000,0.250000,0.750000,0.500000,,,paper,\n") != std::string::npos);
  const auto j = ordo::study::to_json(r[1]);
  CHECK(j["clarity"] == doctest::Approx(0.5));
  CHECK_FALSE(j.contains("geval_correctness"));
}

TEST_CASE("a second pruning series: an importance column, one colour per series and a legend") {
  auto r = rows();
  auto flap = r[1];
  flap.configuration = flap.paper_name = "P[flap]-KD-Q";
  flap.importance = "flap";
  flap.perplexity = 30.0;
  r.push_back(flap);
  const auto table = ordo::study::markdown_table(r);
  CHECK(table.find("| Model | Chain | Importance | Size (MB) |") == 0);
  CHECK(table.find("| P-KD-Q | P-KD-Q | paper | 70.00 |") != std::string::npos);
  CHECK(table.find("| P[flap]-KD-Q | P[flap]-KD-Q | flap | 70.00 | 30.000 |") != std::string::npos);
  CHECK(ordo::study::to_json(r[2])["importance"] == "flap");
  CHECK(ordo::study::csv(r).find(",prompt_alignment,importance,chat_perplexity\n") != std::string::npos);
  const auto svg = ordo::study::svg_plot(r, "two series");
  CHECK(svg.find("fill=\"#1f77b4\"") != std::string::npos);  // the paper's series
  CHECK(svg.find("fill=\"#ff7f0e\"") != std::string::npos);  // the flap series
  CHECK(svg.find(">paper's score</text>") != std::string::npos);
  CHECK(svg.find(">flap score</text>") != std::string::npos);
  // One series alone: no column, no legend.
  const auto one = ordo::study::markdown_table(rows());
  CHECK(one.find("Importance") == std::string::npos);
  CHECK(ordo::study::svg_plot(rows(), "one").find("score</text>") == std::string::npos);
}

TEST_CASE("perplexity on held-out chats: a column after the text's when measured, in the JSON and the CSV") {
  auto r = rows();
  CHECK(ordo::study::markdown_table(r).find("Chat perplexity") == std::string::npos);
  CHECK_FALSE(ordo::study::to_json(r[1]).contains("chat_perplexity"));
  r[1].chat_perplexity = 8.5;
  const auto table = ordo::study::markdown_table(r);
  CHECK(table.find("| Size (MB) | Perplexity | Chat perplexity | Compression | Stage time (s) |\n|---|---|---:|---:|---:|---:|---:|\n") !=
        std::string::npos);
  CHECK(table.find("| P-KD-Q | P-KD-Q | 70.00 | 12.250 | 8.500 | ") != std::string::npos);
  CHECK(table.find("| Base | base | 256.00 | 10.500 | - | 1.00x |") != std::string::npos);  // none measured
  CHECK(ordo::study::to_json(r[1])["chat_perplexity"] == doctest::Approx(8.5));
  CHECK(ordo::study::csv(r).find(",paper,8.500000\n") != std::string::npos);
  r[1].chat_perplexity = std::numeric_limits<double>::infinity();
  CHECK(ordo::study::to_json(r[1])["chat_perplexity"].is_null());
}

TEST_CASE("a bar chart: one bar per value, labels, the reference line") {
  const std::vector<double> v = {0.5, 2.0, -0.25};
  const std::vector<std::string> labels = {"0", "1", "2"};
  const auto svg = ordo::study::svg_bars(v, labels, "t & u", "layer", "change", 1.0);
  std::size_t bars = 0;
  for (auto at = svg.find("<rect x="); at != std::string::npos; at = svg.find("<rect x=", at + 1)) ++bars;
  CHECK(bars == 3);
  CHECK(svg.find("t &amp; u") != std::string::npos);
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
  CHECK(svg.find(">2</text>") != std::string::npos);
}

TEST_CASE("a row written as JSON reads back as the same row (what a resumed study keeps)") {
  auto r = rows()[1];
  r.importance = "flap";
  r.perplexity = 12.345678901234567;  // every digit survives
  r.chat_perplexity = 40.0 / 3.0;
  r.clarity = 0.5;
  r.fluency = std::numeric_limits<double>::quiet_NaN();  // written as null
  r.extra["answers"] = nlohmann::json::array({{{"prompt", "a"}, {"answer", "b"}}});
  const auto text = ordo::study::to_json(r).dump();
  const auto back = ordo::study::row_from_json(nlohmann::json::parse(text));
  CHECK(ordo::study::to_json(back).dump() == text);
  CHECK(back.perplexity == r.perplexity);
  CHECK(back.chat_perplexity == r.chat_perplexity);
  CHECK(back.extra == r.extra);
  CHECK(!back.coherence);
  CHECK(std::isnan(*back.fluency));

  auto broken = ordo::study::to_json(r);
  broken.erase("nll");
  CHECK_THROWS_WITH(ordo::study::row_from_json(broken), "a result row lacks 'nll'");
  broken = ordo::study::to_json(r);
  broken["size_mb"] = "big";
  CHECK_THROWS_WITH(ordo::study::row_from_json(broken), "a result row's 'size_mb' is not a number");
  CHECK_THROWS_WITH(ordo::study::row_from_json(nlohmann::json::array()), "a result row must be a JSON object");
}

namespace {
// The quick study's seventeen rows as docs/results.md reports them (size MB, perplexity): a
// crowd of seven points within 0.1 decade at 149 MB, two at 513 MB, one series per importance.
std::vector<ordo::study::result_row> study_rows() {
  struct figures {
    const char* name;
    const char* importance;
    double size, perplexity;
  };
  const figures table[] = {
      {"Base", "paper", 513.13, 19.94},       {"KD", "paper", 513.13, 19.31},
      {"Q", "paper", 160.37, 24.18},          {"P", "paper", 422.17, 665.8},
      {"P-KD-Q", "paper", 148.64, 1216},      {"KD-P-Q", "paper", 148.64, 1580},
      {"P-Q-KD", "paper", 148.64, 1100},      {"KD-Q-P", "paper", 148.64, 2300},
      {"Q-KD-P", "paper", 148.64, 5400},      {"Q-P-KD", "paper", 148.64, 9662},
      {"P[flap]", "flap", 422.48, 33.36},     {"P[flap]-KD-Q", "flap", 148.95, 41.99},
      {"KD-P[flap]-Q", "flap", 148.95, 41.54}, {"P[flap]-Q-KD", "flap", 148.95, 41.90},
      {"KD-Q-P[flap]", "flap", 148.95, 49.49}, {"Q-KD-P[flap]", "flap", 148.95, 50.99},
      {"Q-P[flap]-KD", "flap", 148.95, 51.70}};
  std::vector<ordo::study::result_row> rows;
  for (const auto& f : table) {
    ordo::study::result_row r;
    r.configuration = r.paper_name = f.name;
    r.importance = f.importance;
    r.size_mb = f.size;
    r.perplexity = f.perplexity;
    rows.push_back(r);
  }
  return rows;
}

struct svg_text {
  double x, y, size;
  std::string anchor, text;
  bool rotated;
};

// Every <text> element of an SVG the report writes (one per line, attributes in its order).
std::vector<svg_text> texts_of(const std::string& svg) {
  std::vector<svg_text> out;
  const std::regex element(R"re(<text x="([-0-9.]+)" y="([-0-9.]+)"([^>]*)>([^<]*)</text>)re");
  const std::regex anchor(R"re(text-anchor="(\w+)")re"), size(R"re(font-size="([0-9.]+)")re");
  for (std::sregex_iterator it(svg.begin(), svg.end(), element), end; it != end; ++it) {
    const auto& m = *it;
    const std::string attributes = m[3];
    std::smatch a;
    svg_text t{std::stod(m[1]), std::stod(m[2]), 12, "start", m[4], attributes.find("transform") != std::string::npos};
    if (std::regex_search(attributes, a, anchor)) t.anchor = a[1];
    if (std::regex_search(attributes, a, size)) t.size = std::stod(a[1]);
    out.push_back(t);
  }
  return out;
}

// A tick as people write one: at most three significant digits (150, 2.5, 10.5, 20000; not 148.6).
bool round_value(const std::string& text) {
  std::string digits;
  for (char c : text)
    if (c >= '0' && c <= '9') digits += c;
  digits.erase(0, digits.find_first_not_of('0'));
  digits.erase(digits.find_last_not_of('0') + 1);
  return !digits.empty() && digits.size() <= 3;
}
}  // namespace

TEST_CASE("the plot people read: round ticks, no label over another or over a point, all inside") {
  namespace pl = ordo::study::detail::plot;
  for (const auto& set : {study_rows(), rows()}) {
    const auto svg = ordo::study::svg_plot(set, "ordo study (quick): size vs perplexity, SmolLM2-135M-Instruct.Q4_1.gguf");
    const auto texts = texts_of(svg);
    REQUIRE(texts.size() > set.size());
    std::vector<pl::box> boxes;
    int x_ticks = 0, y_ticks = 0;
    for (const auto& t : texts) {
      if (t.rotated) continue;  // the y axis title, alone in its margin
      const auto b = pl::text_box(t.x, t.y, t.text, t.size, t.anchor);
      CAPTURE(t.text);
      CHECK(b.inside(pl::box{0, 0, 800, 520}));  // nothing clipped
      for (const auto& other : boxes) CHECK_FALSE(b.overlaps(other));
      boxes.push_back(b);
      if (t.anchor == "end" && t.x == 72) {  // a y tick: perplexity
        ++y_ticks;
        CHECK(round_value(t.text));
      } else if (t.y == 478 && t.anchor == "middle") {  // an x tick: size
        ++x_ticks;
        CHECK(round_value(t.text));
      }
    }
    CHECK(x_ticks >= 3);
    CHECK(y_ticks >= 3);
    // Every row's label is there, and no label covers a point.
    const std::regex point(R"re(<(?:circle cx="([-0-9.]+)" cy="([-0-9.]+)"|rect x="([-0-9.]+)" y="([-0-9.]+)" width="9"))re");
    std::vector<pl::box> points;
    for (std::sregex_iterator it(svg.begin(), svg.end(), point), end; it != end; ++it) {
      const auto& m = *it;
      const double cx = m[1].matched ? std::stod(m[1]) : std::stod(m[3]) + 4.5;
      const double cy = m[1].matched ? std::stod(m[2]) : std::stod(m[4]) + 4.5;
      if (cy < 60) continue;  // the legend's markers
      points.push_back({cx - 5, cy - 5, cx + 5, cy + 5});
    }
    CHECK(points.size() == set.size());
    for (const auto& r : set) {
      const auto label = r.paper_name + " (" + pl::figure_text(r.perplexity) + ")";
      const auto it = std::find_if(texts.begin(), texts.end(), [&](const svg_text& t) { return t.text == label; });
      REQUIRE_MESSAGE(it != texts.end(), label);
      const auto b = pl::text_box(it->x, it->y, it->text, it->size, it->anchor);
      for (const auto& p : points) CHECK_FALSE(b.overlaps(p));
    }
  }
  CHECK(pl::figure_text(41.99) == "41.99");
  CHECK(pl::figure_text(665.8) == "665.8");
  CHECK(pl::figure_text(1216.4) == "1216");
  CHECK(pl::linear_ticks(135.2, 540.3) == std::vector<double>{100, 200, 300, 400, 500, 600});
  CHECK(pl::log_ticks(1.2, 4.1).front() == doctest::Approx(20));  // 1, 2, 5 per decade
}

TEST_CASE("a real SVG renderer draws the plots" * doctest::test_suite("renderer")) {
  if (std::system("command -v rsvg-convert > /dev/null 2>&1") != 0)
    skip_test("rsvg-convert is not installed (Debian: librsvg2-bin, which ./ordo deps installs)");
  const auto dir = std::filesystem::temp_directory_path() / ("ordo-plot-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::vector<double> values = {0.5, 2.0, -0.25};
  const std::vector<std::string> labels = {"0", "1", "2"};
  const std::pair<std::string, std::string> plots[] = {
      {"study.svg", ordo::study::svg_plot(study_rows(), "seventeen configurations & two series")},
      {"bars.svg", ordo::study::svg_bars(values, labels, "bars", "layer", "change", 1.0)}};
  for (const auto& [name, svg] : plots) {
    CAPTURE(name);
    std::ofstream(dir / name) << svg;
    const auto png = dir / (name + ".png");
    const auto command = "rsvg-convert -o '" + png.string() + "' '" + (dir / name).string() + "' 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
    // A PNG of the SVG's size: its signature, then IHDR's width and height (big-endian).
    std::ifstream in(png, std::ios::binary);
    unsigned char header[24] = {};
    in.read(reinterpret_cast<char*>(header), sizeof header);
    REQUIRE(in.gcount() == 24);
    CHECK(header[1] == 'P');
    CHECK(header[2] == 'N');
    const auto be32 = [&](int at) {
      return (static_cast<unsigned>(header[at]) << 24) | (static_cast<unsigned>(header[at + 1]) << 16) |
             (static_cast<unsigned>(header[at + 2]) << 8) | header[at + 3];
    };
    CHECK(be32(16) > 100);
    CHECK(be32(20) > 100);
    if (name == "study.svg") {
      CHECK(be32(16) == 800);
      CHECK(be32(20) == 520);
    }
  }
  // A broken file fails: the renderer is really checking.
  std::ofstream(dir / "broken.svg") << "<svg xmlns=\"http://www.w3.org/2000/svg\"><text>unclosed";
  CHECK(std::system(("rsvg-convert -o /dev/null '" + (dir / "broken.svg").string() + "' > /dev/null 2>&1").c_str()) != 0);
  std::filesystem::remove_all(dir);
}

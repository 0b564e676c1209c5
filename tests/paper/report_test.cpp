// The study's reports: table, CSV, JSON and plot from result rows.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <ordo/paper/report.hpp>

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

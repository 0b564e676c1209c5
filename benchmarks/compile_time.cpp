// ordo-bench-compile-time: what the pipeline algebra costs the compiler as typelists grow.
//
// Writes small translation units to a temporary directory and times the compiler on each
// (-O0, object output), printing one JSON object:
//   - "empty":            int main() {}, the compiler's fixed cost;
//   - "pipeline_tu":      only <ordo/pipeline.hpp> and the paper's P-KD-Q pipeline (goal < 3 s);
//   - "permutations/N":   ordo::permutations of N distinct stages (N! pipelines), the validity of
//                         each checked at compile time, for N = 3 .. --max-stages.
// Usage: ordo-bench-compile-time [--max-stages N (3..6, default 6)] [--repeat R (default 3)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>  // getpid

#ifndef ORDO_BENCH_CXX
#error "ORDO_BENCH_CXX (the compiler to time) must be defined by the build"
#endif
#ifndef ORDO_BENCH_FLAGS
#error "ORDO_BENCH_FLAGS (include flags) must be defined by the build"
#endif

namespace fs = std::filesystem;

namespace {

const char* const stage_pool[] = {"ordo::Prune<10>", "ordo::Distill<ordo::T4, ordo::A03>",
                                  "ordo::QuantNF4",  "ordo::Dequantize",
                                  "ordo::Prune<20>", "ordo::Distill<ordo::T2, ordo::A05>"};

long factorial(int n) { return n <= 1 ? 1 : n * factorial(n - 1); }

std::string permutations_tu(int n) {
  std::string stages;
  for (int i = 0; i < n; ++i) stages += std::string(i ? ", " : "") + stage_pool[i];
  return "#include <ordo/pipeline.hpp>\n"
         "#include <boost/hana/count_if.hpp>\n#include <boost/hana/size.hpp>\n"
         "namespace hana = boost::hana;\n"
         "constexpr auto all = ordo::permutations<" +
         stages +
         ">();\n"
         "static_assert(hana::size(all) == hana::size_c<" +
         std::to_string(factorial(n)) +
         ">);\n"
         "constexpr auto valid = hana::count_if(all, [](auto t) {\n"
         "  using P = typename decltype(t)::type;\n"
         "  return hana::bool_c<ordo::pipeline_is_valid_v<P> && !ordo::pipeline_name_v<P>.empty()>;\n"
         "});\n"
         "int main() { return static_cast<int>(valid) == 0; }\n";
}

double time_compile(const fs::path& source, const fs::path& object) {
  const std::string command = std::string(ORDO_BENCH_CXX) + " -std=c++20 -O0 " + ORDO_BENCH_FLAGS + " -c " +
                              source.string() + " -o " + object.string();
  const auto start = std::chrono::steady_clock::now();
  const int rc = std::system(command.c_str());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (rc != 0) {
    std::fprintf(stderr, "ordo-bench-compile-time: compiling %s failed: %s\n", source.string().c_str(),
                 command.c_str());
    std::exit(1);
  }
  return seconds;
}

double median_seconds(const fs::path& dir, const std::string& name, const std::string& code, int repeat) {
  const fs::path source = dir / (name + ".cpp");
  std::ofstream(source) << code;
  std::vector<double> times;
  for (int r = 0; r < repeat; ++r) times.push_back(time_compile(source, dir / (name + ".o")));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int max_stages = 6;
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--max-stages" && i + 1 < argc) {
      max_stages = std::atoi(argv[++i]);
    } else if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--max-stages 3..6] [--repeat R]\n", argv[0]);
      return 2;
    }
  }
  if (max_stages < 3 || max_stages > 6 || repeat < 1) {
    std::fprintf(stderr, "ordo-bench-compile-time: --max-stages must be 3..6, --repeat >= 1\n");
    return 2;
  }
  const fs::path dir = fs::temp_directory_path() / ("ordo-compile-time-" + std::to_string(::getpid()));
  fs::create_directories(dir);

  const double empty = median_seconds(dir, "empty", "int main() {}\n", repeat);
  const double pipeline =
      median_seconds(dir, "pipeline_tu",
                     "#include <ordo/pipeline.hpp>\n"
                     "using Best = ordo::Pipeline<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>, "
                     "ordo::QuantNF4>;\nstatic_assert(Best::name() == \"P-KD-Q\");\n",
                     repeat);
  std::printf(
      "{\"benchmark\": \"compile_time\", \"compiler\": \"%s\", \"optimization\": \"-O0\", "
      "\"repeat\": %d,\n \"results\": [\n",
      ORDO_BENCH_CXX, repeat);
  std::printf("  {\"case\": \"empty\", \"seconds\": %.3f},\n", empty);
  std::printf(
      "  {\"case\": \"pipeline_tu\", \"seconds\": %.3f, \"over_empty\": %.2f, "
      "\"goal_seconds\": 3.0, \"goal_met\": %s}",
      pipeline, pipeline / empty, pipeline < 3.0 ? "true" : "false");
  double previous = 0;
  for (int n = 3; n <= max_stages; ++n) {
    const double s = median_seconds(dir, "permutations_" + std::to_string(n), permutations_tu(n), repeat);
    std::printf(
        ",\n  {\"case\": \"permutations\", \"stages\": %d, \"pipelines\": %ld, "
        "\"seconds\": %.3f, \"ms_per_pipeline\": %.3f, \"over_pipeline_tu\": %.2f",
        n, factorial(n), s, 1000.0 * (s - pipeline) / factorial(n), s / pipeline);
    if (previous > 0) std::printf(", \"over_previous\": %.2f", s / previous);
    std::printf("}");
    previous = s;
  }
  std::printf("\n]}\n");
  fs::remove_all(dir);
}

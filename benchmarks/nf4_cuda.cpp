// NF4 CUDA kernels: quantize, dequantize and batch-1 GEMV throughput in GB/s, next to the
// device-to-device copy bandwidth measured in the same run, as JSON with the GPU goals of
// docs/nf4.md (dequantize >= 80% of memory bandwidth, GEMV >= 60%).
//
//   ordo-bench-nf4-cuda [--shape ROWSxCOLS]... [--repeat N] [--working-set-mib M]
//
// Each kernel is timed with CUDA events over a pass through enough copies of its buffers to
// exceed --working-set-mib (default 1024 MiB, many times any L2), so the figures are HBM figures.
// Bytes counted: everything read plus everything written. "Memory bandwidth" is the rate of a
// cudaMemcpyAsync device-to-device copy of the working set (bytes read + written), measured here.
// Without a CUDA device it prints {"skipped": ...} and exits 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <ordo/kernels/device.hpp>
#include <ordo/kernels/nf4.hpp>
#include <ordo/quant/nf4_codebook.hpp>

namespace cnf4 = ordo::cuda::nf4;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

struct Buffer {
  void* p = nullptr;
  explicit Buffer(std::size_t bytes) { check(cudaMalloc(&p, std::max<std::size_t>(bytes, 1)), "cudaMalloc"); }
  Buffer(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p(o.p) { o.p = nullptr; }
  ~Buffer() {
    if (p) cudaFree(p);
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

// Median seconds per copy of `repeat` timed passes over `copies` copies.
template <class F>
double time_per_copy(int repeat, std::size_t copies, const F& pass) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  pass(0);
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> t;
  for (int r = 0; r < repeat; ++r) {
    check(cudaEventRecord(start), "cudaEventRecord");
    for (std::size_t c = 0; c < copies; ++c) pass(c);
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    t.push_back(ms / 1e3 / copies);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::size_t copies_for(double bytes, std::size_t working_set) {
  return std::max<std::size_t>(2, static_cast<std::size_t>(working_set / bytes) + 1);
}

// Fills a device buffer with values of a normal-ish distribution (sum of uniforms), on the host.
void fill(float* device, std::size_t n, unsigned seed) {
  std::vector<float> h(n);
  std::uint32_t s = seed;
  for (auto& v : h) {
    float acc = 0;
    for (int k = 0; k < 4; ++k) {
      s = s * 1664525u + 1013904223u;
      acc += static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
    }
    v = acc * 0.02f;
  }
  check(cudaMemcpy(device, h.data(), n * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  int repeat = 10;
  std::size_t working_set = std::size_t{1024} << 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shape") {
      const auto x = v.find('x');
      shapes.emplace_back(std::stoull(v.substr(0, x)), std::stoull(v.substr(x + 1)));
    } else if (k == "--repeat") {
      repeat = std::max(1, std::stoi(v));
    } else if (k == "--working-set-mib") {
      working_set = std::stoull(v) << 20;
    } else {
      std::fprintf(stderr, "usage: ordo-bench-nf4-cuda [--shape ROWSxCOLS]... [--repeat N] [--working-set-mib M]\n");
      return 2;
    }
  }
  if (shapes.empty()) shapes = {{4096, 4096}, {11008, 4096}};
  if (ordo::cuda::device_count() == 0) {
    std::printf("{\"benchmark\": \"nf4_cuda\", \"skipped\": \"no CUDA device: %s\"}\n",
                ordo::cuda::device_query_error().c_str());
    return 0;
  }
  try {
    double copy_gbps = 0;
    {
      const std::size_t half = working_set / 2;
      Buffer a(half), b(half);
      check(cudaMemset(a.p, 1, half), "cudaMemset");
      const double t = time_per_copy(repeat, 1, [&](std::size_t) {
        check(cudaMemcpyAsync(b.p, a.p, half, cudaMemcpyDeviceToDevice), "cudaMemcpyAsync");
      });
      copy_gbps = 2.0 * half / t / 1e9;
    }
    std::printf("{\n  \"benchmark\": \"nf4_cuda\",\n  \"device\": \"%s\",\n  \"blocksize\": 64,\n",
                ordo::cuda::device_description(0).c_str());
    std::printf("  \"working_set_bytes\": %zu,\n  \"copy_gbps\": %.1f,\n  \"shapes\": [\n", working_set, copy_gbps);
    bool all = true;
    for (std::size_t s = 0; s < shapes.size(); ++s) {
      const auto [rows, cols] = shapes[s];
      const std::size_t n = rows * cols, bs = 64, blocks = ordo::quant::nf4::block_count(n, bs);
      const std::size_t packed = ordo::quant::nf4::packed_bytes(n);
      Buffer w(n * 4), x(cols * 4), y(rows * 4), out(n * 4);
      fill(w.as<float>(), n, 1);
      fill(x.as<float>(), cols, 2);

      const double q_bytes = 4.0 * n + packed + 4.0 * blocks;
      const double d_bytes = packed + 4.0 * blocks + 4.0 * n;
      const double d16_bytes = packed + 4.0 * blocks + 2.0 * n;
      const double g_bytes = packed + 4.0 * blocks + 4.0 * cols + 4.0 * rows;
      const std::size_t g_copies = copies_for(g_bytes, working_set);
      std::vector<Buffer> qw, qa;
      for (std::size_t c = 0; c < g_copies; ++c) {
        qw.emplace_back(packed);
        qa.emplace_back(blocks * 4);
        cnf4::quantize(w.p, cnf4::Dtype::f32, n, bs, qw.back().as<std::uint8_t>(), qa.back().as<float>(), nullptr);
      }
      const std::size_t d_copies = std::min(g_copies, copies_for(d_bytes, working_set));
      const double tq = time_per_copy(repeat, 1, [&](std::size_t) {
        cnf4::quantize(w.p, cnf4::Dtype::f32, n, bs, qw[0].as<std::uint8_t>(), qa[0].as<float>(), nullptr);
      });
      const double td = time_per_copy(repeat, d_copies, [&](std::size_t c) {
        cnf4::dequantize(qw[c].as<std::uint8_t>(), qa[c].as<float>(), n, bs, out.p, cnf4::Dtype::f32, nullptr);
      });
      const double td16 = time_per_copy(repeat, d_copies, [&](std::size_t c) {
        cnf4::dequantize(qw[c].as<std::uint8_t>(), qa[c].as<float>(), n, bs, out.p, cnf4::Dtype::bf16, nullptr);
      });
      const double tg = time_per_copy(repeat, g_copies, [&](std::size_t c) {
        cnf4::gemv(qw[c].as<std::uint8_t>(), qa[c].as<float>(), rows, cols, bs, x.as<float>(), y.as<float>(), nullptr);
      });
      const double dq = d_bytes / td / 1e9, dq16 = d16_bytes / td16 / 1e9, gv = g_bytes / tg / 1e9;
      const bool g1 = dq >= 0.8 * copy_gbps, g2 = gv >= 0.6 * copy_gbps;
      all = all && g1 && g2;
      std::printf(
          "    {\"rows\": %zu, \"cols\": %zu, \"quantize_f32_gbps\": %.1f, \"dequantize_f32_gbps\": %.1f, "
          "\"dequantize_bf16_gbps\": %.1f, \"gemv_gbps\": %.1f, \"gemv_seconds\": %.3g,\n",
          rows, cols, q_bytes / tq / 1e9, dq, dq16, gv, tg);
      std::printf(
          "     \"ratios\": {\"dequantize_f32_over_copy\": %.3f, \"gemv_over_copy\": %.3f},\n"
          "     \"goals\": {\"dequantize >= 0.8 copy\": %s, \"gemv >= 0.6 copy\": %s}}%s\n",
          dq / copy_gbps, gv / copy_gbps, g1 ? "true" : "false", g2 ? "true" : "false",
          s + 1 < shapes.size() ? "," : "");
    }
    std::printf("  ],\n  \"all_goals_met\": %s\n}\n", all ? "true" : "false");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-bench-nf4-cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}

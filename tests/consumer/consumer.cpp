// A program outside ordo's tree that uses ordo the way a research project would.
#include <cstdio>

#include <ordo/pipeline.hpp>
#include <ordo/study.hpp>
#ifdef ORDO_HAVE_KERNELS
#include <ordo/kernels/device.hpp>
#endif

using Best = ordo::Pipeline<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>, ordo::QuantNF4>;
static_assert(Best::name() == "P-KD-Q");

int main() {
  int n = 0;
  ordo::for_each_pipeline(ordo::paper_orderings<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>, ordo::QuantNF4>(),
                          [&](auto) { ++n; });
#ifdef ORDO_HAVE_KERNELS
  std::printf("CUDA devices: %d\n", ordo::cuda::device_count());
#endif
  std::printf("consumer: %s, %d orderings\n", Best::name().data(), n);
  return n == 6 ? 0 : 1;
}

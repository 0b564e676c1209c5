// distributed_worker OUT [SHIFT]: one rank of a data-parallel fine-tune (the process group from
// torchrun's variables); rank 0 saves the parameters to OUT. SHIFT changes this rank's data.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <ordo/train/distributed.hpp>
#include <ordo/train/trainer.hpp>

#include "distributed_support.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: distributed_worker OUT [SHIFT]\n");
    return 2;
  }
  try {
    at::set_num_threads(1);
    auto group = ordo::dist::group::from_environment();
    auto lm = dist_test::model();
    auto o = dist_test::options();
    o.group = group;
    ordo::train::fine_tune(lm, dist_test::data(argc > 2 ? std::atoi(argv[2]) : 0), o, {});
    if (!group || group->rank() == 0) {
      std::vector<torch::Tensor> params;
      for (const auto& p : lm->parameters()) params.push_back(p.detach().clone());
      torch::save(params, argv[1]);
    }
    std::printf("rank %d of %d done\n", group ? group->rank() : 0, group ? group->size() : 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_worker: %s\n", e.what());
    return 1;
  }
}

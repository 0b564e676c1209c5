// distributed_worker OUT [SHIFT] [after]: one rank of a data-parallel fine-tune (the process group from
// torchrun's variables); rank 0 saves the parameters to OUT. SHIFT changes this rank's data;
// "after" reduces the gradients after the backward passes instead of during the last one.
// Then the ranks share the evaluation of the untrained model (rank 0 writes its figures to
// OUT.eval) and gather one string each (OUT.gather).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
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
    // "during" with buckets of 4 KB: several go out while the backward pass runs.
    if (group && argc > 3) group->set_overlap(std::string(argv[3]) != "after", 4096);
    auto lm = dist_test::model();
    auto o = dist_test::options();
    o.group = group;
    ordo::train::fine_tune(lm, dist_test::data(argc > 2 ? std::atoi(argv[2]) : 0), o, {});
    if (!group || group->rank() == 0) {
      std::vector<torch::Tensor> params;
      for (const auto& p : lm->parameters()) params.push_back(p.detach().clone());
      torch::save(params, argv[1]);
    }
    if (group) {
      const auto figures = dist_test::sharded_figures(group->shard());
      const auto all = group->all_gather(std::string(static_cast<std::size_t>(group->rank()) * 3 + 1, 'a' + group->rank()));
      if (group->rank() == 0) {
        std::ofstream(std::string(argv[1]) + ".eval") << figures;
        std::ofstream out(std::string(argv[1]) + ".gather");
        for (const auto& s : all) out << s << "\n";
      }
    }
    std::printf("rank %d of %d done\n", group ? group->rank() : 0, group ? group->size() : 1);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_worker: %s\n", e.what());
    return 1;
  }
}

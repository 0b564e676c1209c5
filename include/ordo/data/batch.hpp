// ordo/data/batch.hpp — examples to padded tensors.
//
// Right padding: ids [B, T] int64 (padding = pad_id), attention_mask [B, T] int64 (1 real,
// 0 padding), labels [B, T] int64 (-100 at padding and wherever the example does not score);
// T is the longest example of the batch.
#pragma once

#include <algorithm>  // std::max, std::min
#include <cstdint>    // std::int64_t
#include <span>       // std::span
#include <stdexcept>  // std::invalid_argument
#include <vector>     // std::vector

#include <torch/torch.h>

#include <ordo/data/examples.hpp>  // ignore_index
#include <ordo/data/example.hpp>   // Example

namespace ordo::data {

struct Batch {
  torch::Tensor ids, attention_mask, labels;  // [B, T] int64 each
  std::int64_t real_tokens = 0;               // attention_mask.sum()
  std::int64_t scored_tokens = 0;             // targets the loss scores (labels[:, 1:] != -100)
};

/// The batch's tensors on `device` (the counts stay).
inline Batch to_device(Batch b, const torch::Device& device) {
  if (b.ids.device() == device) return b;
  b.ids = b.ids.to(device);
  b.attention_mask = b.attention_mask.to(device);
  b.labels = b.labels.to(device);
  return b;
}

inline Batch collate(std::span<const Example> examples, std::int64_t pad_id = 0) {
  if (examples.empty()) throw std::invalid_argument("ordo::data::collate: no examples");
  std::int64_t T = 0;
  for (const auto& e : examples) {
    if (e.ids.size() != e.labels.size())
      throw std::invalid_argument("ordo::data::collate: an example has " + std::to_string(e.ids.size()) + " ids but " +
                                  std::to_string(e.labels.size()) + " labels");
    T = std::max<std::int64_t>(T, static_cast<std::int64_t>(e.ids.size()));
  }
  if (T == 0) throw std::invalid_argument("ordo::data::collate: every example is empty");
  const auto B = static_cast<std::int64_t>(examples.size());
  Batch b;
  b.ids = torch::full({B, T}, pad_id, torch::kLong);
  b.attention_mask = torch::zeros({B, T}, torch::kLong);
  b.labels = torch::full({B, T}, ignore_index, torch::kLong);
  auto ids = b.ids.accessor<std::int64_t, 2>();
  auto mask = b.attention_mask.accessor<std::int64_t, 2>();
  auto labels = b.labels.accessor<std::int64_t, 2>();
  for (std::int64_t i = 0; i < B; ++i) {
    const auto& e = examples[static_cast<std::size_t>(i)];
    for (std::size_t t = 0; t < e.ids.size(); ++t) {
      ids[i][static_cast<std::int64_t>(t)] = e.ids[t];
      mask[i][static_cast<std::int64_t>(t)] = 1;
      labels[i][static_cast<std::int64_t>(t)] = e.labels[t];
      b.real_tokens += 1;
      b.scored_tokens += t > 0 && e.labels[t] != ignore_index;
    }
  }
  return b;
}

/// Consecutive batches of `batch_size` examples (the last may be smaller).
inline std::vector<Batch> batches(std::span<const Example> examples, std::int64_t batch_size, std::int64_t pad_id = 0) {
  if (batch_size < 1) throw std::invalid_argument("ordo::data::batches: batch_size must be at least 1");
  std::vector<Batch> out;
  for (std::size_t at = 0; at < examples.size(); at += static_cast<std::size_t>(batch_size))
    out.push_back(
        collate(examples.subspan(at, std::min(examples.size() - at, static_cast<std::size_t>(batch_size))), pad_id));
  return out;
}

}  // namespace ordo::data

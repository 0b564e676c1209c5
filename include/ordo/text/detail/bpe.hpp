// ordo/text/detail/bpe.hpp — the merge step of BPE: ranked merges of adjacent symbols.
#pragma once

#include <algorithm>      // std::sort
#include <cstddef>        // std::size_t
#include <cstdint>        // std::int32_t, std::uint32_t, std::uint64_t
#include <functional>     // std::greater
#include <queue>          // std::priority_queue
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::pair
#include <vector>         // std::vector

namespace ordo::detail {

/// The merge table of a BPE model: (left id, right id) -> (rank, merged id).
class BpeMerges {
 public:
  void reserve(std::size_t n) { table_.reserve(n); }
  std::size_t size() const { return table_.size(); }

  /// A later merge of the same pair replaces an earlier one, as in Hugging Face's table.
  void add(std::int32_t left, std::int32_t right, std::int32_t rank, std::int32_t merged) {
    table_[key(left, right)] = {rank, merged};
  }

  /// Every merge as (left, right) ids, highest priority (lowest rank) first.
  std::vector<std::pair<std::int32_t, std::int32_t>> ranked() const {
    std::vector<std::pair<std::int32_t, std::uint64_t>> by_rank;
    by_rank.reserve(table_.size());
    for (const auto& [k, v] : table_) by_rank.emplace_back(v.first, k);
    std::sort(by_rank.begin(), by_rank.end());
    std::vector<std::pair<std::int32_t, std::int32_t>> out;
    out.reserve(by_rank.size());
    for (const auto& [rank, k] : by_rank)
      out.emplace_back(static_cast<std::int32_t>(k >> 32), static_cast<std::int32_t>(k & 0xFFFFFFFFu));
    return out;
  }

  /// Merges `symbols` as Hugging Face's Word::merge_all does: always the lowest-ranked pair
  /// present, leftmost on ties, until no pair has a merge; appends the result to `out`.
  /// O(n log n) in the number of symbols.
  void apply(const std::vector<std::int32_t>& symbols, std::vector<std::int32_t>& out) const {
    if (symbols.empty()) return;
    struct Symbol {
      std::int32_t id;
      int prev, next;
      bool alive;
    };
    std::vector<Symbol> s;
    s.reserve(symbols.size());
    for (std::size_t i = 0; i < symbols.size(); ++i)
      s.push_back({symbols[i], static_cast<int>(i) - 1, i + 1 < symbols.size() ? static_cast<int>(i) + 1 : -1, true});

    struct Candidate {
      std::int32_t rank;
      int pos;
      std::int32_t merged;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    const auto consider = [&](int left) {
      const int right = s[static_cast<std::size_t>(left)].next;
      if (right < 0) return;
      const auto it = table_.find(key(s[static_cast<std::size_t>(left)].id, s[static_cast<std::size_t>(right)].id));
      if (it != table_.end()) queue.push({it->second.first, left, it->second.second});
    };
    for (int i = 0; i + 1 < static_cast<int>(s.size()); ++i) consider(i);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      auto& left = s[static_cast<std::size_t>(top.pos)];
      if (!left.alive || left.next < 0) continue;
      auto& right = s[static_cast<std::size_t>(left.next)];
      // Skip stale entries: the pair at this position changed since it was queued.
      const auto it = table_.find(key(left.id, right.id));
      if (it == table_.end() || it->second.second != top.merged) continue;
      left.id = top.merged;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) s[static_cast<std::size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0) consider(left.prev);
      consider(top.pos);
    }
    for (const auto& x : s)
      if (x.alive) out.push_back(x.id);
  }

 private:
  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> table_;
};

}  // namespace ordo::detail

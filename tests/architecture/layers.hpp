// tests/architecture/layers.hpp — the layer rules of include/ordo/, checked on header texts.
//
// The layer order is read from docs/architecture.md (the fenced block tagged `layers`: one
// folder per line, bottom first, with `torch-free` or `torch`). A header belongs to the layer of
// its folder; a top-level header `ordo/<name>.hpp` to the layer `<name>`, and `ordo/ordo.hpp`
// stands above every layer. The rules, each a violation with the file and the include:
//   unknown layer   a header in a folder the order does not name
//   upward          an include of a header in a higher layer
//   detail          an include of another folder's detail/ header
//   torch           LibTorch (torch/, ATen/, c10/), directly or through ordo headers, in a
//                   torch-free layer
//   cycle           folders that include each other, directly or through others
#pragma once

#include <algorithm>   // std::find
#include <cstddef>     // std::size_t
#include <functional>  // std::function
#include <map>         // std::map
#include <optional>    // std::optional
#include <regex>       // std::regex
#include <set>         // std::set
#include <sstream>     // std::istringstream
#include <stdexcept>   // std::runtime_error
#include <string>      // std::string
#include <vector>      // std::vector

namespace layers {

struct Layer {
  std::string folder;
  bool torch_free = false;
};

/// The `layers` block of docs/architecture.md, bottom first. Throws when it is missing or malformed.
inline std::vector<Layer> parse_order(const std::string& markdown) {
  const auto begin = markdown.find("```layers\n");
  if (begin == std::string::npos) throw std::runtime_error("no ```layers block");
  const auto end = markdown.find("```", begin + 10);
  if (end == std::string::npos) throw std::runtime_error("the ```layers block is not closed");
  std::istringstream in(markdown.substr(begin + 10, end - begin - 10));
  std::vector<Layer> order;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string folder, kind;
    if (!(words >> folder)) continue;
    if (!(words >> kind) || (kind != "torch-free" && kind != "torch"))
      throw std::runtime_error("layer '" + folder + "': say torch-free or torch");
    order.push_back({folder, kind == "torch-free"});
  }
  if (order.empty()) throw std::runtime_error("the ```layers block names no layer");
  return order;
}

/// The includes of a header's text: "ordo/x/y.hpp", "torch/torch.h", ... (angle brackets or quotes).
inline std::vector<std::string> includes_of(const std::string& text) {
  static const std::regex include(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, include)) out.push_back(m[1]);
  return out;
}

inline bool is_torch(const std::string& include) {
  return include.starts_with("torch/") || include.starts_with("ATen/") || include.starts_with("c10/");
}

/// "ordo/model/decoder.hpp" -> "model"; "ordo/pipeline.hpp" -> "pipeline"; "ordo/ordo.hpp" -> "ordo".
inline std::string folder_of(const std::string& header) {
  const std::string rest = header.substr(5);  // after "ordo/"
  const auto slash = rest.find('/');
  if (slash != std::string::npos) return rest.substr(0, slash);
  return rest.substr(0, rest.rfind('.'));
}

struct Violation {
  std::string rule;  // unknown layer, upward, detail, torch, cycle
  std::string what;
};

/// Checks `headers` (path "ordo/..." -> text) against `order`.
inline std::vector<Violation> check(const std::map<std::string, std::string>& headers,
                                    const std::vector<Layer>& order) {
  std::vector<Violation> out;
  std::map<std::string, std::size_t> rank;
  for (std::size_t i = 0; i < order.size(); ++i) rank[order[i].folder] = i;
  const std::size_t top = order.size();  // ordo/ordo.hpp
  auto rank_of = [&](const std::string& header) -> std::optional<std::size_t> {
    const auto f = folder_of(header);
    if (f == "ordo") return top;
    if (auto it = rank.find(f); it != rank.end()) return it->second;
    return std::nullopt;
  };
  std::map<std::string, std::vector<std::string>> includes;
  for (const auto& [path, text] : headers) includes[path] = includes_of(text);

  std::map<std::string, std::set<std::string>> folder_edges;
  for (const auto& [path, incs] : includes) {
    const auto mine = rank_of(path);
    if (!mine) {
      out.push_back({"unknown layer", path + ": folder '" + folder_of(path) + "' is not in the layer order"});
      continue;
    }
    for (const auto& inc : incs) {
      if (!inc.starts_with("ordo/")) continue;
      const auto theirs = rank_of(inc);
      if (theirs && *theirs > *mine)
        out.push_back({"upward", path + " includes " + inc + " (layer '" + folder_of(inc) + "' is above '" +
                                     folder_of(path) + "')"});
      if (folder_of(inc) != folder_of(path)) {
        folder_edges[folder_of(path)].insert(folder_of(inc));
        if (inc.find("/detail/") != std::string::npos)
          out.push_back({"detail", path + " includes " + inc + ", a detail header of another folder"});
      }
    }
  }

  // LibTorch reached from a torch-free layer, through any chain of ordo headers.
  std::map<std::string, std::optional<std::string>> torch_via;  // header -> first torch include reached
  std::function<std::optional<std::string>(const std::string&, std::set<std::string>&)> reach =
      [&](const std::string& h, std::set<std::string>& seen) -> std::optional<std::string> {
    if (auto it = torch_via.find(h); it != torch_via.end()) return it->second;
    if (!seen.insert(h).second) return std::nullopt;
    std::optional<std::string> found;
    if (auto it = includes.find(h); it != includes.end())
      for (const auto& inc : it->second) {
        if (is_torch(inc))
          found = inc;
        else if (inc.starts_with("ordo/"))
          if (auto via = reach(inc, seen)) found = inc + " -> " + *via;
        if (found) break;
      }
    torch_via[h] = found;
    return found;
  };
  for (const auto& [path, incs] : includes) {
    const auto r = rank_of(path);
    if (!r || *r == top || !order[*r].torch_free) continue;
    std::set<std::string> seen;
    if (auto via = reach(path, seen))
      out.push_back({"torch", path + " reaches LibTorch in the torch-free layer '" + folder_of(path) + "': " + *via});
  }

  // Cycles between folders (depth-first search; each cycle reported once, from its smallest folder).
  std::set<std::string> reported;
  for (const auto& [start, _] : folder_edges) {
    std::vector<std::string> path{start};
    std::function<void(const std::string&)> walk = [&](const std::string& f) {
      for (const auto& next : folder_edges[f]) {
        if (next == start) {
          std::string text;
          for (const auto& p : path) text += p + " -> ";
          auto smallest = *std::min_element(path.begin(), path.end());
          if (smallest == start && reported.insert(text).second)
            out.push_back({"cycle", "folders include each other: " + text + start});
        } else if (std::find(path.begin(), path.end(), next) == path.end() && path.size() < 16) {
          path.push_back(next);
          walk(next);
          path.pop_back();
        }
      }
    };
    walk(start);
  }
  return out;
}

}  // namespace layers

// ordo/pipeline/stages.hpp — ordo's four stages and their compile-time parameters.
//
//   ordo::Prune<30>                       structured FFN pruning, 30 % of neurons removed ("P"),
//                                         the paper's importance, the same ratio in every layer
//   ordo::Prune<30, ordo::importance::flap, ordo::allocation::global>
//                                         another importance score and allocation ("P[flap,global]")
//   ordo::Distill<ordo::T4, ordo::A03>    knowledge distillation, T = 4, alpha = 0.3    ("KD")
//   ordo::QuantNF4                        NF4, blocksize 64, double quantization       ("Q")
//                                         (a type deriving from QuantizeNF4<64, on>)
//   ordo::QuantizeNF4<128, ordo::double_quant::off>   the same with other parameters   ("Q")
//   ordo::Dequantize                      NF4 back to dense, exactly the values NF4 stands for ("D")
//
// Invalid parameters stop compilation with a message naming the parameter and its range.
#pragma once

#include <charconv>     // std::to_chars
#include <cstdint>      // std::intmax_t
#include <string>       // std::string, std::to_string
#include <string_view>  // std::string_view
#include <type_traits>  // std::is_same_v

#include <ordo/pipeline/detail/static_string.hpp>  // joined
#include <ordo/pipeline/type_list.hpp>              // dependent_false
#include <ordo/pipeline/stage.hpp>      // stage concept
#include <ordo/pipeline/state.hpp>      // dense, nf4

namespace ordo {

// ---- parameters ---------------------------------------------------------------------------

/// A softmax temperature Num/Den for distillation; must be positive.
template <std::intmax_t Num, std::intmax_t Den = 1>
struct temperature {
  static_assert(Den > 0, "ordo::temperature<Num, Den>: the denominator Den must be positive");
  static_assert(Num > 0, "ordo::temperature<Num, Den>: the temperature must be positive (Num > 0)");
  static constexpr std::intmax_t num = Num;
  static constexpr std::intmax_t den = Den;
  static constexpr double value = static_cast<double>(Num) / static_cast<double>(Den);
};

/// The weight Num/Den of the distillation (KL) term against cross-entropy; within [0, 1].
template <std::intmax_t Num, std::intmax_t Den = 1>
struct alpha {
  static_assert(Den > 0, "ordo::alpha<Num, Den>: the denominator Den must be positive");
  static_assert(Num >= 0 && Num <= Den, "ordo::alpha<Num, Den>: alpha = Num/Den must lie within [0, 1]");
  static constexpr std::intmax_t num = Num;
  static constexpr std::intmax_t den = Den;
  static constexpr double value = static_cast<double>(Num) / static_cast<double>(Den);
};

using T2 = temperature<2>;  ///< the paper's reference scripts
using T4 = temperature<4>;  ///< the paper
using A03 = alpha<3, 10>;   ///< the paper: 0.3 KL + 0.7 CE
using A05 = alpha<1, 2>;

namespace detail {
template <class T>
inline constexpr bool is_temperature_v = false;
template <std::intmax_t N, std::intmax_t D>
inline constexpr bool is_temperature_v<temperature<N, D>> = true;
template <class T>
inline constexpr bool is_alpha_v = false;
template <std::intmax_t N, std::intmax_t D>
inline constexpr bool is_alpha_v<alpha<N, D>> = true;

// Shortest decimal that reads back as `v` ("0.3", "4").
inline std::string shortest_decimal(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::to_string(v);
}

constexpr bool is_valid_nf4_blocksize(unsigned long long b) { return b >= 32 && b <= 4096 && (b & (b - 1)) == 0; }
}  // namespace detail

enum class double_quant : bool { off = false, on = true };

// ---- stages -------------------------------------------------------------------------------

/// How the P stage ranks FFN neurons (stages/prune.hpp has the formulas). Each policy is a tag
/// type with its name, which the stage's symbol carries ("P[flap]") unless it is the paper's.
namespace importance {
/// The paper: 0.5 * sum|W_gate,W_up row| / max + 0.5 * mean|gate_proj output| / max.
struct paper {
  static constexpr std::string_view name = "paper";
};
/// Minitron: per channel of down_proj's input, the mean |activation| over a sequence, L2 over sequences.
struct activation {
  static constexpr std::string_view name = "activation";
};
/// Wanda-sp: sum_j |W_down[j, i]| * ||X_i||_2 (X: down_proj's input over the calibration tokens).
struct wanda {
  static constexpr std::string_view name = "wanda";
};
/// FLAP: variance of X_i over the calibration tokens * ||W_down[:, i]||^2, with bias compensation.
struct flap {
  static constexpr std::string_view name = "flap";
};
/// LLM-Pruner's first-order Taylor score: sum over the neuron's weights of |w * dL/dw|.
struct taylor {
  static constexpr std::string_view name = "taylor";
};
}  // namespace importance

/// How the P stage spreads the removals over layers.
namespace allocation {
/// The paper: the same ratio in every layer.
struct uniform {
  static constexpr std::string_view name = "uniform";
};
/// Scores standardized per layer and ranked across layers (as many neurons removed in all as
/// uniform would), each layer removing at most min(2 * ratio, 0.9) of its neurons.
struct global {
  static constexpr std::string_view name = "global";
};
}  // namespace allocation

namespace detail {
template <class T>
inline constexpr bool is_importance_v = false;
template <>
inline constexpr bool is_importance_v<importance::paper> = true;
template <>
inline constexpr bool is_importance_v<importance::activation> = true;
template <>
inline constexpr bool is_importance_v<importance::wanda> = true;
template <>
inline constexpr bool is_importance_v<importance::flap> = true;
template <>
inline constexpr bool is_importance_v<importance::taylor> = true;
template <class T>
inline constexpr bool is_allocation_v = false;
template <>
inline constexpr bool is_allocation_v<allocation::uniform> = true;
template <>
inline constexpr bool is_allocation_v<allocation::global> = true;

struct no_separator {
  static constexpr std::string_view value = "";
};
template <std::string_view const& S>
struct text {
  static constexpr std::string_view value = S;
};
inline constexpr std::string_view p_open = "P[", close_bracket = "]", comma = ",";
// "P", "P[flap]", "P[flap,global]", "P[paper,global]"
template <class Importance, class Allocation>
struct prune_symbol {
  static constexpr bool paper_importance = std::is_same_v<Importance, importance::paper>;
  static constexpr bool uniform_allocation = std::is_same_v<Allocation, allocation::uniform>;
  static constexpr std::string_view value = [] {
    if constexpr (paper_importance && uniform_allocation)
      return std::string_view("P");
    else if constexpr (uniform_allocation)
      return joined<no_separator, text<p_open>, text<Importance::name>, text<close_bracket>>::value;
    else
      return joined<no_separator, text<p_open>, text<Importance::name>, text<comma>, text<Allocation::name>,
                    text<close_bracket>>::value;
  }();
};
}  // namespace detail

namespace detail {
// The policies of a Prune stage: the first given or importance::paper, the second given or
// allocation::uniform.
template <class... Policy>
struct prune_policies {
  static_assert(sizeof...(Policy) <= 2,
                "ordo::Prune<Percent, Importance, Allocation>: at most two policies, an importance and an "
                "allocation");
  using importance = importance::paper;
  using allocation = allocation::uniform;
};
template <class I>
struct prune_policies<I> {
  using importance = I;
  using allocation = allocation::uniform;
};
template <class I, class A>
struct prune_policies<I, A> {
  using importance = I;
  using allocation = A;
};
}  // namespace detail

/// Structured pruning of FFN neurons: removes `Percent` % of the intermediate neurons (of every
/// decoder layer with allocation::uniform, of all layers together with allocation::global),
/// ranked by an importance policy (default importance::paper), then an optional recovery
/// (fine-tune or distillation). Written Prune<30>, Prune<30, importance::flap> or
/// Prune<30, importance::flap, allocation::global>; the policies are a pack rather than
/// defaulted parameters so that diagnostics name Prune<30> as users write it.
template <int Percent, class... Policy>
struct Prune {
  static_assert(Percent > 0 && Percent < 100,
                "ordo::Prune<Percent>: Percent is the share of FFN neurons removed and must "
                "satisfy 0 < Percent < 100");
  using importance_type = typename detail::prune_policies<Policy...>::importance;
  using allocation_type = typename detail::prune_policies<Policy...>::allocation;
  static_assert(detail::is_importance_v<importance_type>,
                "ordo::Prune<Percent, Importance, Allocation>: Importance must be one of "
                "ordo::importance::paper, activation, wanda, flap, taylor");
  static_assert(detail::is_allocation_v<allocation_type>,
                "ordo::Prune<Percent, Importance, Allocation>: Allocation must be "
                "ordo::allocation::uniform or ordo::allocation::global");
  static constexpr int percent = Percent;
  static constexpr double ratio = Percent / 100.0;
  static constexpr std::string_view symbol = detail::prune_symbol<importance_type, allocation_type>::value;
  static constexpr bool trains = true;  // recovery fine-tune
  using takes = dense;
  using gives = dense;
  static std::string describe() {
    std::string d = "Prune<" + std::to_string(Percent);
    if constexpr (!detail::prune_symbol<importance_type, allocation_type>::paper_importance ||
                  !detail::prune_symbol<importance_type, allocation_type>::uniform_allocation)
      d += ", " + std::string(importance_type::name) + ", " + std::string(allocation_type::name);
    return d + ">";
  }
};

/// Knowledge distillation: loss = (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T).
template <class Temperature, class Alpha>
struct Distill {
  static_assert(detail::is_temperature_v<Temperature>,
                "ordo::Distill<Temperature, Alpha>: the first argument must be an "
                "ordo::temperature<Num, Den>, e.g. ordo::T4");
  static_assert(detail::is_alpha_v<Alpha>,
                "ordo::Distill<Temperature, Alpha>: the second argument must be an "
                "ordo::alpha<Num, Den>, e.g. ordo::A03");
  // Complete the parameters so that their own range checks run (alpha within [0, 1], ...).
  static_assert(sizeof(Temperature) > 0 && sizeof(Alpha) > 0);
  using temperature_type = Temperature;
  using alpha_type = Alpha;
  static constexpr double temperature = Temperature::value;
  static constexpr double alpha = Alpha::value;
  static constexpr std::string_view symbol = "KD";
  static constexpr bool trains = true;
  using takes = dense;
  using gives = dense;
  static std::string describe() {
    return "Distill<T=" + detail::shortest_decimal(temperature) + ", alpha=" + detail::shortest_decimal(alpha) + ">";
  }
};

/// NF4 quantization of every linear layer of the decoder, bit-compatible with bitsandbytes.
/// Leaves an inference-only model: a later stage needs ordo::Dequantize first.
template <unsigned long long Blocksize = 64, double_quant DoubleQuant = double_quant::on>
struct QuantizeNF4 {
  static_assert(detail::is_valid_nf4_blocksize(Blocksize),
                "ordo::QuantizeNF4<Blocksize, DoubleQuant>: Blocksize must be a power of two "
                "from 32 to 4096 (bitsandbytes' 4-bit blocksizes)");
  static constexpr unsigned long long blocksize = Blocksize;
  static constexpr bool double_quantization = DoubleQuant == double_quant::on;
  static constexpr std::string_view symbol = "Q";
  static constexpr bool trains = false;
  using takes = dense;
  using gives = nf4;
  static std::string describe() {
    return "QuantNF4<blocksize=" + std::to_string(Blocksize) +
           ", double_quant=" + (double_quantization ? "on" : "off") + ">";
  }
};

/// The paper's Q: blocksize 64 with double quantization. A type of its own (not an alias of
/// QuantizeNF4<64, double_quant::on>), so that diagnostics name it as users write it: a
/// pipeline error says `ordo::QuantNF4`, not the template behind it. Stage overloads written
/// for QuantizeNF4<B, DQ> take it as its base.
struct QuantNF4 : QuantizeNF4<64, double_quant::on> {};

/// NF4 back to a dense, trainable model holding exactly the values the NF4 weights stand for.
struct Dequantize {
  static constexpr std::string_view symbol = "D";
  static constexpr bool trains = false;
  using takes = nf4;
  using gives = dense;
  static std::string describe() { return "Dequantize"; }
};

static_assert(stage<Prune<30>> && stage<Distill<T4, A03>> && stage<QuantNF4> && stage<Dequantize>);
static_assert(quantizing_stage<QuantNF4> && dequantizing_stage<Dequantize>);

}  // namespace ordo

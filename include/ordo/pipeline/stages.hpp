// ordo/pipeline/stages.hpp — ordo's four stages and their compile-time parameters.
//
//   ordo::Prune<30>                       structured FFN pruning, 30 % of neurons removed ("P")
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

#include <ordo/pipeline/type_list.hpp>  // dependent_false
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

/// Structured pruning of FFN neurons: removes `Percent` % of the intermediate neurons of every
/// decoder layer (by the paper's importance score), then an optional recovery fine-tune.
template <int Percent>
struct Prune {
  static_assert(Percent > 0 && Percent < 100,
                "ordo::Prune<Percent>: Percent is the share of FFN neurons removed and must "
                "satisfy 0 < Percent < 100");
  static constexpr int percent = Percent;
  static constexpr double ratio = Percent / 100.0;
  static constexpr std::string_view symbol = "P";
  static constexpr bool trains = true;  // recovery fine-tune
  using takes = dense;
  using gives = dense;
  static std::string describe() { return "Prune<" + std::to_string(Percent) + ">"; }
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

// ordo/study/remaining.hpp — how long the rest of a study run will take, from what the run has
// measured so far: the mean duration of a stage application that trains (P's recovery, KD) and
// the mean time a configuration takes besides that training (its evaluation, the stages that do
// not train, reading stored models back), each times how many are left. The time before the
// first configuration (loading the model and the data) is not part of that mean. Torch-free.
//
//   ordo::study::remaining_time left(configurations_to_compute);
//   left.plan_training(event.planned_training);        // on a stage start
//   left.trained(seconds);                              // on the end of a stage that trains
//   left.configuration_started(elapsed);                // on a pipeline start (not a skipped one)
//   if (auto s = left.at_configuration_start(elapsed)) print("about ... left", *s);
#pragma once

#include <algorithm>  // std::max
#include <cstddef>    // std::size_t
#include <optional>   // std::optional

namespace ordo::study {

class remaining_time {
 public:
  /// `configurations`: those this run computes (not those an earlier run finished).
  explicit remaining_time(std::size_t configurations = 0) : configurations_(configurations) {}

  /// The stage applications that train that this run plans (stage_event::planned_training).
  void plan_training(std::size_t applications) { planned_training_ = applications; }

  /// A stage application that trains ended after `seconds`.
  void trained(double seconds) {
    ++trained_;
    trained_seconds_ += seconds;
  }

  /// A configuration starts to be computed (one that an earlier run finished is not), `elapsed`
  /// seconds into the run.
  void configuration_started(double elapsed) {
    if (started_++ == 0) first_start_ = elapsed;
  }

  /// Seconds left when a configuration has just started, `elapsed` seconds into the run: nothing
  /// until the run has finished a configuration and a stage that trains (there is nothing to
  /// measure before), nor without a plan.
  std::optional<double> at_configuration_start(double elapsed) const {
    const std::size_t finished = started_ == 0 ? 0 : started_ - 1;
    if (finished == 0 || trained_ == 0 || planned_training_ == 0) return std::nullopt;
    const double per_training = trained_seconds_ / static_cast<double>(trained_);
    const double per_configuration =
        std::max(0.0, elapsed - first_start_ - trained_seconds_) / static_cast<double>(finished);
    const std::size_t training_left = planned_training_ > trained_ ? planned_training_ - trained_ : 0;
    const std::size_t configurations_left = configurations_ > finished ? configurations_ - finished : 0;
    return static_cast<double>(training_left) * per_training +
           static_cast<double>(configurations_left) * per_configuration;
  }

 private:
  std::size_t configurations_ = 0, planned_training_ = 0, trained_ = 0, started_ = 0;
  double trained_seconds_ = 0, first_start_ = 0;
};

}  // namespace ordo::study

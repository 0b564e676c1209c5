// ordo/pipeline/events.hpp — what running stages reports, for progress lines and reports.
//
// An observer is any object with some of these members (all optional):
//   void on_stage_start(const ordo::stage_event&);
//   void on_stage_end(const ordo::stage_event&);     // `elapsed` is set
//   void on_pipeline_start(const ordo::pipeline_event&);   // the study executor only
//   void on_pipeline_end(const ordo::pipeline_event&);
//   void on_pipeline_skipped(const ordo::pipeline_event&); // finished by an earlier run (study store)
#pragma once

#include <chrono>       // std::chrono::nanoseconds, steady_clock
#include <cstddef>      // std::size_t
#include <string_view>  // std::string_view

namespace ordo {

struct stage_event {
  std::string_view pipeline;           ///< the pipeline being computed, e.g. "P-KD-Q"
  std::string_view prefix;             ///< its chain up to and including this stage, e.g. "P-KD"
  std::string_view stage;              ///< the stage's symbol, e.g. "KD"
  std::size_t position = 0;            ///< of the stage in `pipeline`, from 1
  std::size_t length = 0;              ///< stages in `pipeline`
  bool trains = false;                 ///< the stage runs gradient steps (P's recovery, KD)
  std::size_t sequence = 0;            ///< stage applications so far in this run, this one included
  std::size_t planned = 0;             ///< stage applications this run expects in all (0: unknown)
  std::chrono::nanoseconds elapsed{};  ///< duration of the stage (on_stage_end only)
  std::size_t training_sequence = 0;   ///< applications that train so far in this run, this one included
  std::size_t planned_training = 0;    ///< applications that train this run expects (0: unknown)
};

struct pipeline_event {
  std::string_view pipeline;  ///< e.g. "P-KD-Q"
  std::size_t index = 0;      ///< from 1, in the executor's order
  std::size_t total = 0;      ///< pipelines in the run
};

namespace detail {

struct no_observer {};

template <class Observer>
void notify_pipeline_start(Observer& observer, const pipeline_event& event) {
  if constexpr (requires { observer.on_pipeline_start(event); }) observer.on_pipeline_start(event);
}
template <class Observer>
void notify_pipeline_end(Observer& observer, const pipeline_event& event) {
  if constexpr (requires { observer.on_pipeline_end(event); }) observer.on_pipeline_end(event);
}

template <class Observer>
void notify_pipeline_skipped(Observer& observer, const pipeline_event& event) {
  if constexpr (requires { observer.on_pipeline_skipped(event); }) observer.on_pipeline_skipped(event);
}

template <class Observer>
void notify_start(Observer& observer, const stage_event& event) {
  if constexpr (requires { observer.on_stage_start(event); }) observer.on_stage_start(event);
}
template <class Observer>
void notify_end(Observer& observer, const stage_event& event) {
  if constexpr (requires { observer.on_stage_end(event); }) observer.on_stage_end(event);
}

// Runs `work()` between a start and an end event, timing it.
template <class Observer, class Work>
auto observed(Observer& observer, stage_event event, Work&& work) {
  notify_start(observer, event);
  const auto started = std::chrono::steady_clock::now();
  auto result = work();
  event.elapsed = std::chrono::steady_clock::now() - started;
  notify_end(observer, event);
  return result;
}

}  // namespace detail
}  // namespace ordo

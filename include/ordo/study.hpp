// ordo/study.hpp — running many pipelines on one base model with shared prefixes (generic: no
// LibTorch). See ordo/study/executor.hpp.
#pragma once

#include <ordo/study/executor.hpp>   // execute, options, run_figures
#include <ordo/study/plan.hpp>       // plan, schedule_figures
#include <ordo/study/remaining.hpp>  // remaining_time

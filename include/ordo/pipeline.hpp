// ordo/pipeline.hpp — the compile-time algebra of compression pipelines, and nothing else:
// no LibTorch, only the standard library and Boost.Hana.
//
//   #include <ordo/pipeline.hpp>
//   using Best = ordo::Pipeline<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>, ordo::QuantNF4>;
//   static_assert(Best::name() == "P-KD-Q");
//
// See examples/orderings.cpp and docs/pipeline.md.
#pragma once

#include <ordo/pipeline/apply.hpp>      // apply_stage: the customization point
#include <ordo/pipeline/events.hpp>     // stage_event
#include <ordo/pipeline/orderings.hpp>  // permutations, paper_orderings, paper_configurations
#include <ordo/pipeline/pipeline.hpp>   // Pipeline, pipeline_name_v, pipeline_is_valid_v
#include <ordo/pipeline/rules.hpp>      // is_valid_pipeline_v
#include <ordo/pipeline/select.hpp>     // with_pipeline: run-time choice by name
#include <ordo/pipeline/stages.hpp>     // Prune, Distill, QuantNF4, Dequantize

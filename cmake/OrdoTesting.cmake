# Helpers for ordo's tests, examples and benchmarks.

find_package(doctest REQUIRED)

if(NOT TARGET ordo_doctest_main)
  add_library(ordo_doctest_main STATIC ${PROJECT_SOURCE_DIR}/tests/doctest_main.cpp)
  target_link_libraries(ordo_doctest_main PUBLIC doctest::doctest)
  target_compile_features(ordo_doctest_main PUBLIC cxx_std_20)
endif()

# Warnings and diagnostics for ordo's own targets (not for consumers).
# Programs export their symbols (-rdynamic): a crash report (ordo/io/crash_report.hpp) then
# names the functions of the call site and the stack, not only offsets.
function(ordo_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -ftemplate-backtrace-limit=0)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    set_target_properties(${target} PROPERTIES ENABLE_EXPORTS ON)
  endif()
endfunction()

# Include directories a stand-alone compiler call needs to see ordo and its dependencies.
function(_ordo_include_flags out)
  get_target_property(boost_inc Boost::headers INTERFACE_INCLUDE_DIRECTORIES)
  set(dirs ${PROJECT_SOURCE_DIR}/include)
  if(boost_inc)
    list(APPEND dirs ${boost_inc})
  endif()
  list(JOIN dirs "|" joined)
  set(${out} "${joined}" PARENT_SCOPE)
endfunction()

# ordo_add_compile_check(<source>)
# The source states what it expects in comment lines:
#   // expect-error: <text>         the build must fail and its output contain <text> (each line)
#   // expect-error-count: <n>      ... with exactly <n> lines containing "error:"
# Two tests: <name>.fails compiles with -DORDO_EXPECT_ERROR and must fail that way; <name>.twin
# compiles without it and must succeed (the twin is the same program, made valid).
function(ordo_add_compile_check source)
  get_filename_component(name ${source} NAME_WE)
  _ordo_include_flags(includes)
  foreach(mode fails twin)
    add_test(NAME compile_fail.${name}.${mode}
      COMMAND ${CMAKE_COMMAND}
        -DCXX=${CMAKE_CXX_COMPILER} -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/${source}
        -DINCLUDES=${includes} -DMODE=${mode}
        -P ${PROJECT_SOURCE_DIR}/cmake/ordo_compile_check.cmake)
    set_tests_properties(compile_fail.${name}.${mode} PROPERTIES LABELS "compile;torch-free")
  endforeach()
endfunction()

# ordo_add_output_test(<test-name> COMMAND <cmd...> EXPECT <regex...> [FORBID <regex...>]
#                      [EXPECT_STDERR <regex...>] [REQUIRES_FILE <path>])
# Runs the command; passes when it exits 0, its output matches every EXPECT regex and no
# FORBID regex, and its stderr every EXPECT_STDERR regex. Skipped when REQUIRES_FILE (e.g. the
# default model) does not exist.
function(ordo_add_output_test name)
  cmake_parse_arguments(arg "" "REQUIRES_FILE" "COMMAND;EXPECT;FORBID;EXPECT_STDERR" ${ARGN})
  list(JOIN arg_COMMAND "|" cmd)
  list(JOIN arg_EXPECT "|||" expect)
  list(JOIN arg_FORBID "|||" forbid)
  list(JOIN arg_EXPECT_STDERR "|||" expect_stderr)
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${cmd}" "-DEXPECT=${expect}" "-DFORBID=${forbid}"
      "-DEXPECT_STDERR=${expect_stderr}" "-DREQUIRES_FILE=${arg_REQUIRES_FILE}"
      -P ${PROJECT_SOURCE_DIR}/cmake/ordo_check_output.cmake)
  set_tests_properties(${name} PROPERTIES SKIP_REGULAR_EXPRESSION "ORDO-SKIPPED: ")
endfunction()

# ordo_add_failure_test(<test-name> COMMAND <cmd...> EXPECT <regex> [NOT_CREATED <path>]
#                       [EXIT <status>])
# Passes when the command exits with status EXIT (default 1, what docs/errors.md promises) with
# one line on stderr matching EXPECT and without creating NOT_CREATED.
function(ordo_add_failure_test name)
  cmake_parse_arguments(arg "" "EXPECT;NOT_CREATED;EXIT" "COMMAND" ${ARGN})
  if(NOT DEFINED arg_EXIT)
    set(arg_EXIT 1)
  endif()
  list(JOIN arg_COMMAND "|" cmd)
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${cmd}" "-DEXPECT=${arg_EXPECT}" "-DNOT_CREATED=${arg_NOT_CREATED}"
      "-DEXIT=${arg_EXIT}" -P ${PROJECT_SOURCE_DIR}/cmake/ordo_check_failure.cmake)
endfunction()

# cmake -DCXX=... -DSOURCE=... -DINCLUDES=a|b -DMODE=fails|twin|no-torch -P ordo_compile_check.cmake
# See ordo_add_compile_check() in OrdoTesting.cmake.
string(REPLACE "|" ";" include_dirs "${INCLUDES}")
set(flags -std=c++20 -fsyntax-only -fdiagnostics-color=never -ftemplate-backtrace-limit=0)
foreach(dir IN LISTS include_dirs)
  list(APPEND flags -I${dir})
endforeach()

file(STRINGS ${SOURCE} expected REGEX "^// expect-error: ")
list(TRANSFORM expected REPLACE "^// expect-error: " "")
file(STRINGS ${SOURCE} count_line REGEX "^// expect-error-count: ")
string(REGEX REPLACE "^// expect-error-count: *" "" expected_count "${count_line}")

if(MODE STREQUAL "no-torch")
  # The translation unit must compile and none of its headers may come from LibTorch.
  execute_process(COMMAND ${CXX} ${flags} -H ${SOURCE}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} does not compile:\n${out}")
  endif()
  string(REGEX MATCHALL "[^\n]*(torch|ATen|c10)/[^\n]*" torch_headers "${out}")
  if(torch_headers)
    message(FATAL_ERROR "${SOURCE} includes LibTorch headers:\n${torch_headers}")
  endif()
  return()
endif()

if(MODE STREQUAL "fails")
  if(NOT expected)
    message(FATAL_ERROR "${SOURCE} states no '// expect-error: <text>' line")
  endif()
  execute_process(COMMAND ${CXX} ${flags} -DORDO_EXPECT_ERROR ${SOURCE}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} compiled with ORDO_EXPECT_ERROR, but it must not")
  endif()
  foreach(text IN LISTS expected)
    string(FIND "${out}" "${text}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "the compiler's output lacks the expected text\n  ${text}\n"
                          "--- output ---\n${out}")
    endif()
  endforeach()
  if(NOT expected_count STREQUAL "")
    string(REPLACE ";" "," flat "${out}")  # a ';' in a message would split a CMake list
    string(REGEX MATCHALL "[^\n]*error:[^\n]*" errors "${flat}")
    list(LENGTH errors n)
    if(NOT n EQUAL expected_count)
      message(FATAL_ERROR "expected ${expected_count} error line(s), got ${n}\n--- output ---\n${out}")
    endif()
  endif()
  message(STATUS "failed as expected:\n${out}")
else()
  execute_process(COMMAND ${CXX} ${flags} ${SOURCE}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the valid twin of ${SOURCE} does not compile:\n${out}")
  endif()
endif()

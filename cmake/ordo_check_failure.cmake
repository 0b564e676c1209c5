# cmake -DCOMMAND=prog|arg... -DEXPECT=regex [-DNOT_CREATED=path] -P ordo_check_failure.cmake
# Passes when the command exits with a status other than 0 (and was not killed by a signal), its
# standard error is exactly one line matching EXPECT, and NOT_CREATED does not exist afterwards
# (a tool that fails early writes nothing). The warning a tool gives on a machine whose OpenBLAS
# runs generic kernels ("ordo-x: warning: OpenBLAS runs ...", before the work) is not counted.
string(REPLACE "|" ";" command "${COMMAND}")
if(DEFINED NOT_CREATED AND NOT NOT_CREATED STREQUAL "")
  file(REMOVE_RECURSE "${NOT_CREATED}")
endif()
execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("exit status: ${rc}\nstdout: ${out}\nstderr: ${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the command succeeded; it must fail")
endif()
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the command did not exit normally: ${rc}")
endif()
string(REGEX REPLACE "(^|\n)[a-z-]+: warning: OpenBLAS runs [^\n]*\n" "\\1" err "${err}")
string(REGEX REPLACE "\n$" "" line "${err}")
if(line MATCHES "\n")
  message(FATAL_ERROR "the error is more than one line")
endif()
if(NOT line MATCHES "${EXPECT}")
  message(FATAL_ERROR "the error does not match: ${EXPECT}")
endif()
if(DEFINED NOT_CREATED AND NOT NOT_CREATED STREQUAL "" AND EXISTS "${NOT_CREATED}")
  message(FATAL_ERROR "${NOT_CREATED} was created by a run that failed")
endif()

# CTest script: installs the build tree into a scratch prefix, then configures, builds and runs
# examples/embed against it with find_package(larmor), as another project would.
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... [-DMODEL=...] -P install_consumer.cmake
foreach(v BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "install_consumer.cmake: -D${v}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUTPUT "${out}" PARENT_SCOPE)
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/embed -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/embed)
message(STATUS "embed: ${LAST_OUTPUT}")
# y = tanh(x W) summed: the loss and dL/dW[0,0] = sum_i x_i0 (1 - tanh^2((xW)_i0)), computed by hand.
# x = [[1,2,3],[4,5,6]], W = [[0.1,-0.2],[0.3,0.4],[-0.5,0.6]]: loss 0.519004, dL/dW[0,0] 1.995860.
if(NOT LAST_OUTPUT MATCHES "loss 0\\.519004, dloss/dW\\[0,0\\] 1\\.995860")
  message(FATAL_ERROR "embed printed an unexpected result: ${LAST_OUTPUT}")
endif()
if(DEFINED MODEL AND EXISTS "${MODEL}" AND EXISTS ${WORK_DIR}/prefix/bin/larmor)
  run(${WORK_DIR}/build/embed ${MODEL} "CCO")
  if(NOT LAST_OUTPUT MATCHES "13C")
    message(FATAL_ERROR "embed did not print 13C shifts: ${LAST_OUTPUT}")
  endif()
  message(STATUS "embed with ${MODEL}:\n${LAST_OUTPUT}")
endif()

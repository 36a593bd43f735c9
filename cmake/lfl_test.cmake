# lfl_add_test(NAME name SOURCES a.cc b.cc LIBS lib... LABELS unit|integration|slow [TIMEOUT s])
# Builds one GoogleTest binary into build/tests and registers its cases with
# ctest through gtest_discover_tests, labelled for `ctest -L`.
function(lfl_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  set_target_properties(${T_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_include_directories(${T_NAME} PRIVATE ${LFL_ROOT})
  gtest_discover_tests(${T_NAME}
    WORKING_DIRECTORY ${LFL_ROOT}
    DISCOVERY_TIMEOUT 120
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
               ENVIRONMENT "LFL_SOURCE_DIR=${LFL_ROOT};LFL_BINARY_DIR=${CMAKE_BINARY_DIR};OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
endfunction()

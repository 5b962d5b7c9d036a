# ICGT_SANITIZE (e.g. "address,undefined") instruments libicgt and the Catch2 tests; LibTorch, which
# comes prebuilt in the torch wheel, is not instrumented. scripts/sanitize configures a build with it.
if(ICGT_SANITIZE)
  if(ICGT_BUILD_PYTHON)
    # The module would need the sanitizer runtimes preloaded into python; not supported.
    message(FATAL_ERROR "ICGT_SANITIZE is for the C++ tests; configure it without ICGT_BUILD_PYTHON")
  endif()
  set(ICGT_SANITIZE_FLAGS -fsanitize=${ICGT_SANITIZE} -fno-omit-frame-pointer)
  if(ICGT_SANITIZE MATCHES "undefined")
    # Any undefined behaviour is an error that stops the test, not a line in the log. Every UBSan
    # check stays on, vptr included: it also passes on objects that LibTorch (built without it) creates.
    list(APPEND ICGT_SANITIZE_FLAGS -fno-sanitize-recover=undefined)
  endif()
  message(STATUS "icgt: sanitizers ${ICGT_SANITIZE} on libicgt and the tests (${ICGT_SANITIZE_FLAGS})")
endif()

function(icgt_sanitize target)
  if(ICGT_SANITIZE)
    target_compile_options(${target} PRIVATE ${ICGT_SANITIZE_FLAGS})
    target_link_options(${target} PRIVATE ${ICGT_SANITIZE_FLAGS})
  endif()
endfunction()

# LibTorch is the one inside the installed torch wheel, so that libicgt and `import torch` share one
# copy and one C++ ABI (the torch target carries TORCH_CXX_FLAGS).
if(NOT Torch_DIR)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE ICGT_TORCH_PREFIX
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE ICGT_TORCH_FOUND)
  if(NOT ICGT_TORCH_FOUND EQUAL 0)
    message(FATAL_ERROR "icgt needs PyTorch: `${Python3_EXECUTABLE} -c 'import torch'` failed. "
                        "Install torch first (scripts/setup does), or pass -DTorch_DIR=<libtorch>/share/cmake/Torch.")
  endif()
  set(Torch_DIR ${ICGT_TORCH_PREFIX}/Torch)
endif()
find_package(Torch REQUIRED CONFIG)
get_filename_component(ICGT_TORCH_LIBDIR "${TORCH_LIBRARY}" DIRECTORY)

# LibTorch's include folder carries its own copy of fmt, and it comes before /usr/include. A private
# folder holding only the system fmt, searched first, keeps one fmt: the one we link.
function(icgt_prefer_system_fmt target)
  get_target_property(fmt_include fmt::fmt-header-only INTERFACE_INCLUDE_DIRECTORIES)
  set(shadow ${CMAKE_BINARY_DIR}/system-fmt-include)
  if(NOT EXISTS ${shadow}/fmt)
    file(MAKE_DIRECTORY ${shadow})
    file(CREATE_LINK ${fmt_include}/fmt ${shadow}/fmt SYMBOLIC)
  endif()
  target_include_directories(${target} BEFORE PRIVATE ${shadow})
endfunction()

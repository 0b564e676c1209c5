# Optional dependencies of the LibTorch layers. The pipeline algebra and the study executor need
# only Boost.Hana; everything that includes <torch/...> is built when LibTorch is found.
set(ORDO_HAVE_TORCH OFF)
# Inside another project (add_subdirectory), the imported targets found here must be visible
# to that project's targets too: LibTorch's link interface names its targets in generator
# expressions that are evaluated where ordo::models is used.
if(NOT ORDO_TOP_LEVEL)
  set(CMAKE_FIND_PACKAGE_TARGETS_GLOBAL ON)
endif()
if(NOT ORDO_TORCH STREQUAL "OFF")
  # A CUDA LibTorch (PyPI's wheel) compiles CUDA sources of the project for TORCH_CUDA_ARCH_LIST
  # and ignores CMAKE_CUDA_ARCHITECTURES; its automatic list starts at sm_50, which nvcc 13 no
  # longer knows. ordo's kernels target sm_75 to sm_90 either way.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "7.5;8.0;8.6;8.9;9.0")
  endif()
  if(ORDO_TORCH STREQUAL "ON")
    find_package(Torch REQUIRED)
  else()
    find_package(Torch QUIET)
  endif()
  if(Torch_FOUND)
    set(ORDO_HAVE_TORCH ON)
    message(STATUS "ordo: LibTorch ${Torch_VERSION} found; building the LibTorch layers")
    # TorchConfig finds libc10 with find_library, which searches the system's directories before
    # its own hint: on a machine that also has a system LibTorch (Debian's libtorch-dev), a build
    # against PyPI's wheel linked the system's libc10 beside the wheel's libtorch (two c10s in one
    # process). Each library of TORCH_LIBRARIES found outside TORCH_INSTALL_PREFIX is taken from
    # the prefix's lib/ when it has one of that name.
    set(ordo_torch_libraries)
    foreach(lib IN LISTS TORCH_LIBRARIES)
      string(FIND "${lib}" "${TORCH_INSTALL_PREFIX}/" at)
      get_filename_component(name "${lib}" NAME)
      if(IS_ABSOLUTE "${lib}" AND NOT at EQUAL 0 AND EXISTS "${TORCH_INSTALL_PREFIX}/lib/${name}")
        message(STATUS "ordo: ${lib} is not this LibTorch's; using ${TORCH_INSTALL_PREFIX}/lib/${name}")
        set(lib "${TORCH_INSTALL_PREFIX}/lib/${name}")
      endif()
      list(APPEND ordo_torch_libraries "${lib}")
    endforeach()
    set(TORCH_LIBRARIES ${ordo_torch_libraries})
    # PyPI's wheel: libtorch_cuda finds its CUDA libraries (NCCL, cuDNN, ...) in site-packages/nvidia
    # through its RPATH at run time; the linker must look there too, or it takes an older copy
    # from the system (e.g. /usr/local/cuda/lib/libnccl.so.2) and fails on missing symbols.
    file(GLOB ORDO_TORCH_WHEEL_LIBS LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")
    foreach(dir IN LISTS ORDO_TORCH_WHEEL_LIBS)
      get_filename_component(dir "${dir}" REALPATH)
      add_link_options("LINKER:-rpath-link,${dir}")
      list(APPEND ORDO_TORCH_LINK_OPTIONS "LINKER:-rpath-link,${dir}")
    endforeach()
  else()
    message(STATUS "ordo: LibTorch not found; building the torch-free layers only")
  endif()
endif()

# The model layers (io, tokenizer, decoder, stages) also need nlohmann-json and PCRE2.
find_package(nlohmann_json 3 QUIET)
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PCRE2 QUIET IMPORTED_TARGET GLOBAL libpcre2-8)
endif()
if(NOT TARGET PkgConfig::PCRE2)
  # No pkg-config (or no .pc file): the header and library where CMake looks for them
  # (CMAKE_PREFIX_PATH included, e.g. a prefix made by tools/deps-prefix.sh), same target name.
  find_path(ORDO_PCRE2_INCLUDE_DIR pcre2.h)
  find_library(ORDO_PCRE2_LIBRARY NAMES pcre2-8)
  if(ORDO_PCRE2_INCLUDE_DIR AND ORDO_PCRE2_LIBRARY)
    add_library(PkgConfig::PCRE2 UNKNOWN IMPORTED GLOBAL)
    set_target_properties(PkgConfig::PCRE2 PROPERTIES IMPORTED_LOCATION "${ORDO_PCRE2_LIBRARY}"
                                                      INTERFACE_INCLUDE_DIRECTORIES "${ORDO_PCRE2_INCLUDE_DIR}")
    message(STATUS "ordo: PCRE2 without pkg-config: ${ORDO_PCRE2_LIBRARY}")
  endif()
endif()
find_package(CLI11 QUIET)

# ordo_models (ordo::models): everything a program on real models links (ordo's headers,
# LibTorch, nlohmann-json, PCRE2). Used by the examples, tests and benchmarks, by projects that
# add_subdirectory(ordo), and exported with the installed package (find_package(ordo) then finds
# LibTorch and PCRE2 itself). In the build tree it also defines ORDO_SOURCE_DIR, where the
# default model, the sentence encoder and the study prompts are found; an installed ordo finds
# them through ORDO_DEFAULT_MODEL, ORDO_MINILM_DIR, or paths given to the programs.
set(ORDO_HAVE_OPENMP OFF)
if(ORDO_HAVE_TORCH AND nlohmann_json_FOUND AND TARGET PkgConfig::PCRE2)
  add_library(ordo_models INTERFACE)
  target_link_libraries(ordo_models INTERFACE ordo ${TORCH_LIBRARIES}
                        nlohmann_json::nlohmann_json PkgConfig::PCRE2)
  if(ORDO_TORCH_LINK_OPTIONS)
    target_link_options(ordo_models INTERFACE ${ORDO_TORCH_LINK_OPTIONS})
  endif()
  # LibTorch's at::parallel_for is inline, and with an OpenMP LibTorch (Debian's and PyPI's both
  # use libgomp) it runs in parallel only in units compiled with OpenMP: without it, ordo's own
  # parallel loops (the NF4 GEMV and attention of batch-1 decoding) ran on one thread.
  find_package(OpenMP QUIET)
  if(OpenMP_CXX_FOUND)
    target_link_libraries(ordo_models INTERFACE OpenMP::OpenMP_CXX)
    set(ORDO_HAVE_OPENMP ON)
  endif()
  target_compile_definitions(ordo_models INTERFACE $<BUILD_INTERFACE:ORDO_SOURCE_DIR="${PROJECT_SOURCE_DIR}">)
  set_target_properties(ordo_models PROPERTIES EXPORT_NAME models)
  add_library(ordo::models ALIAS ordo_models)
  set(ORDO_HAVE_MODELS ON)
  # Data parallelism on CPUs (ordo/train/distributed.hpp) needs c10d's Gloo backend: compiled
  # into Debian's LibTorch, whose headers need Gloo's (libgloo-dev). PyPI's wheel ships no Gloo
  # headers; there ordo's process groups are unavailable (a clear error when WORLD_SIZE > 1).
  find_path(ORDO_GLOO_INCLUDE_DIR gloo/config.h)
  if(ORDO_GLOO_INCLUDE_DIR AND TORCH_INSTALL_PREFIX MATCHES "^/usr/?$")
    target_compile_definitions(ordo_models INTERFACE ORDO_WITH_GLOO=1)
    set(ORDO_HAVE_GLOO ON)
    message(STATUS "ordo: c10d Gloo backend available: data-parallel training across processes")
  else()
    set(ORDO_HAVE_GLOO OFF)
    message(STATUS "ordo: no c10d Gloo headers for this LibTorch; data parallelism across processes is off")
  endif()
else()
  set(ORDO_HAVE_MODELS OFF)
  if(ORDO_HAVE_TORCH)
    message(WARNING "ordo: nlohmann-json or PCRE2 missing; programs on real models are not built")
  endif()
endif()

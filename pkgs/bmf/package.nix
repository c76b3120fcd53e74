# BabitMF (BMF) 0.2.0, the C++ media-graph runtime behind comfyx's `--engine bmf`, built from
# its pinned source against nixpkgs' FFmpeg and libraries instead of the PyPI wheel (whose
# binaries want FFmpeg 4's sonames and exist for CPython <= 3.12 only).
#
# Source: non-cone sparse checkout without bmf_lite/ (the mobile SDK, not built here; two of its
# GIFs were missing from the mirror the hash was computed from). BMF's CMake fetches its
# dependencies from GitHub unless BMF_LOCAL_DEPENDENCIES/HMP_LOCAL_DEPENDENCIES are off; with
# them off it finds nixpkgs' pybind11, fmt, spdlog, dlpack, nlohmann_json, backward-cpp, gtest
# and benchmark, and only stduuid (always fetched) is handed over as a pinned source. This set of
# flags and dependencies was checked with a CMake configure against Debian's packages.
{
  lib,
  buildPythonPackage,
  fetchComfyxSource,
  comfyxSources,
  setuptools,
  cmake,
  ninja,
  pkg-config,
  pybind11,
  fmt,
  spdlog,
  dlpack,
  nlohmann_json,
  backward-cpp,
  gtest,
  gbenchmark,
  libuuid,
  ffmpeg_6 ? null,
  ffmpeg,
  numpy,
}:
let
  s = comfyxSources.bmf;
  stduuid = fetchComfyxSource "stduuid";
  ffmpeg' = if ffmpeg_6 != null then ffmpeg_6 else ffmpeg;
in
buildPythonPackage {
  pname = "bmf";
  inherit (s) version;
  pyproject = true;

  src = fetchComfyxSource "bmf";

  # BMF pins an old fmt; nixpkgs' (9 and later) needs a formatter for the device-type enum.
  patches = [ ./fmt-device-type.patch ];

  # BMF's FindLibuuid.cmake downloads libuuid-cmake; nixpkgs' libuuid is found directly.
  postPatch = ''
    cat > cmake/FindLibuuid.cmake <<'CMAKE'
    find_path(Libuuid_INCLUDE_DIRS uuid/uuid.h REQUIRED)
    find_library(Libuuid_LIBRARIES uuid REQUIRED)
    set(Libuuid_FOUND YES)
    CMAKE
  '';

  build-system = [ setuptools ];
  nativeBuildInputs = [
    cmake
    ninja
    pkg-config
  ];
  buildInputs = [
    pybind11
    fmt
    spdlog
    dlpack
    nlohmann_json
    backward-cpp
    gtest # hmp's CMake requires GTest and benchmark even with its tests off
    gbenchmark
    libuuid
    ffmpeg'
  ];
  dependencies = [ numpy ];
  dontUseCmakeConfigure = true; # setup.py drives CMake

  env = {
    GIT_SHA = s.rev; # setup.py embeds its first 7 characters
    CMAKE_ARGS = lib.concatStringsSep " " [
      "-DBMF_LOCAL_DEPENDENCIES=OFF"
      "-DHMP_LOCAL_DEPENDENCIES=OFF"
      "-DBMF_ENABLE_CUDA=OFF"
      "-DHMP_ENABLE_CUDA=OFF"
      "-DHMP_ENABLE_TORCH=OFF"
      "-DHMP_ENABLE_OPENCV=OFF"
      "-DHMP_ENABLE_JNI=OFF"
      "-DBMF_ENABLE_TEST=OFF"
      "-DFETCHCONTENT_FULLY_DISCONNECTED=ON"
      "-DFETCHCONTENT_SOURCE_DIR_STDUUID=${stduuid}"
    ];
  };

  pythonImportsCheck = [ "bmf" ];

  passthru = { inherit stduuid; };

  meta = {
    description = "Babit Multimedia Framework: C++ media-graph runtime with Python bindings";
    homepage = "https://github.com/BabitMF/bmf";
    license = lib.licenses.asl20;
    platforms = lib.platforms.linux;
  };
}

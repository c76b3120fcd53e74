# comfyx-kernels (python/comfyx-kernels): scikit-build-core + nanobind + CMake. Without CUDA it
# builds the CPU extension only; with `cudaSupport` nvcc compiles the CUDA kernels too.
{
  lib,
  config,
  buildPythonPackage,
  scikit-build-core,
  nanobind,
  cmake,
  ninja,
  cudaPackages,
  cudaSupport ? config.cudaSupport,
}:
let
  pyproject = lib.importTOML ../../python/comfyx-kernels/pyproject.toml;
in
buildPythonPackage {
  pname = "comfyx-kernels";
  inherit (pyproject.project) version;
  pyproject = true;

  src = lib.fileset.toSource {
    root = ../../python/comfyx-kernels;
    fileset = ../../python/comfyx-kernels;
  };

  build-system = [
    scikit-build-core
    nanobind
  ];
  nativeBuildInputs = [
    cmake
    ninja
  ]
  ++ lib.optionals cudaSupport [ cudaPackages.cuda_nvcc ];
  buildInputs = lib.optionals cudaSupport [
    cudaPackages.cuda_cudart
    cudaPackages.cuda_cccl
  ];
  # scikit-build-core runs CMake itself; say which extension to build instead of letting it
  # probe for nvcc (AUTO), so the result depends on the derivation only.
  dontUseCmakeConfigure = true;
  env.COMFYX_KERNELS_CUDA = if cudaSupport then "ON" else "OFF";

  pythonImportsCheck = [ "comfyx_kernels" ];

  meta.license = lib.licenses.asl20;
}

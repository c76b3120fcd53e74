# The Intel runtime torch's XPU wheel requires: SYCL and the Unified Runtime, oneMKL, oneCCL,
# Intel MPI, OpenMP, TBB, PTI and the compiler runtimes, as the 21 PyPI wheels it names in
# Requires-Dist. They hold libraries and no Python code, and are built for one prefix, the way pip
# installs them side by side into one environment: they link each other from the same lib/, and
# the Unified Runtime loader loads its adapters from its own directory. So they are installed
# together here, into one store path, each with its .dist-info (which torch's requirements check).
{
  lib,
  buildPythonPackage,
  fetchComfyxWheel,
  comfyxSources,
  stdenv,
  autoPatchelfHook,
  level-zero,
  libffi,
  zlib,
}:
let
  # torch 2.10.0+xpu's Requires-Dist, in its order; the versions are the pins in sources.json.
  wheels = [
    "intel-cmplr-lib-rt"
    "intel-cmplr-lib-ur"
    "intel-cmplr-lic-rt"
    "intel-sycl-rt"
    "oneccl-devel"
    "oneccl"
    "impi-rt"
    "onemkl-license"
    "onemkl-sycl-blas"
    "onemkl-sycl-dft"
    "onemkl-sycl-lapack"
    "onemkl-sycl-rng"
    "onemkl-sycl-sparse"
    "dpcpp-cpp-rt"
    "intel-opencl-rt"
    "mkl"
    "intel-openmp"
    "tbb"
    "tcmlib"
    "umf"
    "intel-pti"
  ];
in
buildPythonPackage {
  pname = "intel-xpu-runtime";
  inherit (comfyxSources.intel-sycl-rt) version;
  format = "wheel";
  srcs = map fetchComfyxWheel wheels;
  # The install phase installs every wheel in dist/ (no two of them share a path).
  unpackPhase = ''
    runHook preUnpack
    mkdir dist
    for wheel in $srcs; do
      cp "$wheel" "dist/$(stripHash "$wheel")"
    done
    runHook postUnpack
  '';

  nativeBuildInputs = [ autoPatchelfHook ];
  buildInputs = [
    stdenv.cc.cc.lib
    zlib
    libffi # OpenMP's host offload plugin
    level-zero # libze_loader.so.1; nixpkgs' loader finds the GPU driver in /run/opengl-driver
  ];
  # The Unified Runtime's Level Zero adapter dlopens libze_loader.so.1 rather than linking it; as a
  # NEEDED entry it is resolved like the others and its directory lands on the adapter's runpath.
  postInstall = ''
    for adapter in "$out"/lib/libur_adapter_level_zero*.so*; do
      patchelf --add-needed libze_loader.so.1 "$adapter"
    done
  '';
  # Intel MPI's libfabric providers for InfiniBand, EFA, Omni-Path and UCX fabrics: loaded only
  # when MPI runs across machines, which ComfyUI never does.
  autoPatchelfIgnoreMissingDeps = [
    "libibverbs.so.1"
    "librdmacm.so.1"
    "libefa.so.1"
    "libpsm2.so.2"
    "libucp.so.0"
    "libnuma.so.1"
    "libuuid.so.1"
  ];
  # The wheels require only each other (all of them here), and nixpkgs checks requirements before
  # the install phase, when none is installed yet. torch's check sees them all.
  dontCheckRuntimeDeps = true;
  # Prebuilt libraries: stripping them again has broken such ELF files (nixpkgs' torch-bin skips it).
  dontStrip = true;
  passthru = { inherit wheels; };
  meta = {
    description = "Intel oneAPI runtime libraries required by torch's XPU build (PyPI wheels)";
    # oneMKL, oneCCL, Intel MPI, TBB: Intel Simplified Software License; the compiler runtimes:
    # Intel's developer tools EULA.
    license = with lib.licenses; [
      issl
      unfree
    ];
    platforms = [ "x86_64-linux" ];
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
  };
}

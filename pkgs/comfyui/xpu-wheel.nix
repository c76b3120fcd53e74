# One wheel of torch's XPU build (torch, torchvision, torchaudio, triton-xpu), pinned by URL in
# sources.json. Their libraries link the Intel runtime (libsycl, oneMKL, oneCCL, ...) and the
# Level Zero loader; torchvision's and torchaudio's also link torch's own (`linkedTorch`).
{
  lib,
  buildPythonPackage,
  fetchComfyxWheel,
  comfyxSources,
  stdenv,
  autoPatchelfHook,
  python,
  level-zero,
  zlib,
  intel-xpu-runtime,
  name,
  dependencies ? [ ],
  linkedTorch ? null,
}:
let
  s = comfyxSources.${name};
in
buildPythonPackage {
  inherit (s) pname version;
  format = "wheel";
  src = fetchComfyxWheel name;

  nativeBuildInputs = [ autoPatchelfHook ];
  buildInputs = [
    stdenv.cc.cc.lib
    zlib
    level-zero
    intel-xpu-runtime
  ];
  # libtorch*.so / libc10*.so live inside the torch package, not in a lib/ directory.
  preFixup = lib.optionalString (linkedTorch != null) ''
    addAutoPatchelfSearchPath "${linkedTorch}/${python.sitePackages}/torch/lib"
  '';
  inherit dependencies;
  # Prebuilt libraries: stripping them again has broken such ELF files (nixpkgs' torch-bin skips it).
  dontStrip = true;
  meta = {
    homepage = "https://pytorch.org/";
    license = if s.pname == "triton-xpu" then lib.licenses.mit else lib.licenses.bsd3;
    platforms = [ "x86_64-linux" ];
    sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
  };
}

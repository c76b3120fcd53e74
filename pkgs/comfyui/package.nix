# ComfyUI for one backend (cpu, cuda, ipex, tpu): the pinned source, a Python environment with
# ComfyUI's requirements, comfyx and the backend's torch, and two programs:
#   bin/comfyui  start the server with state under $XDG_DATA_HOME/comfyui (what `nix run` runs)
#   bin/comfyx   comfyx itself, with COMFYUI_PATH pointing at the store copy of ComfyUI
# Python packages are fixed at build time; nothing is pip-installed at run time. Custom nodes add
# theirs through `extraPythonPackages` (the NixOS and Home Manager modules do this).
{
  lib,
  stdenvNoCC,
  callPackage,
  makeWrapper,
  replaceVars,
  runtimeShell,
  comfyui-src,
  backend,
  withBmf ? false,
  extraPythonPackages ? (ps: [ ]),
}:
let
  python = callPackage ./python.nix { inherit backend; };
  # Everything in ComfyUI v0.3.64's requirements.txt, in its order.
  requirements =
    ps: with ps; [
      comfyui-frontend-package
      comfyui-workflow-templates
      comfyui-embedded-docs
      torch
      torchsde
      torchvision
      torchaudio
      numpy
      einops
      transformers
      tokenizers
      sentencepiece
      safetensors
      aiohttp
      yarl
      pyyaml
      pillow
      scipy
      tqdm
      psutil
      alembic
      sqlalchemy
      av
      kornia
      spandrel
      pydantic
      pydantic-settings
    ];
  backendPackages =
    ps:
    {
      cpu = [ ];
      cuda = [ ps.comfyx-kernels ];
      ipex = [ ps.intel-extension-for-pytorch ];
      tpu = [ ps.torch-xla ];
    }
    .${backend};
  env = python.withPackages (
    ps:
    requirements ps
    ++ backendPackages ps
    ++ [ ps.comfyx ]
    ++ lib.optional withBmf ps.bmf
    ++ extraPythonPackages ps
  );
  launcher = replaceVars ./comfyui.sh {
    inherit runtimeShell backend;
    comfyx = "${env}/bin/comfyx";
    comfyui = "${comfyui-src}";
  };
in
stdenvNoCC.mkDerivation {
  pname = "comfyui-${backend}";
  inherit (comfyui-src) version;
  dontUnpack = true;
  nativeBuildInputs = [ makeWrapper ];
  installPhase = ''
    runHook preInstall
    makeWrapper ${env}/bin/comfyx $out/bin/comfyx \
      --set-default COMFYUI_PATH ${comfyui-src} \
      --set-default COMFYX_BACKEND ${backend}
    install -Dm755 ${launcher} $out/bin/comfyui
    runHook postInstall
  '';
  passthru = {
    inherit
      backend
      python
      env
      comfyui-src
      withBmf
      ;
  };
  meta = {
    description = "ComfyUI (${comfyui-src.version}) with comfyx, ${backend} backend";
    homepage = "https://github.com/Comfy-Org/ComfyUI";
    license = lib.licenses.gpl3Only;
    mainProgram = "comfyui";
    platforms = [ "x86_64-linux" ];
  };
}

# ComfyUI for one variant (cpu, cuda, ipex for Intel GPUs, ipex-cpu for Xeon CPUs, tpu): the pinned
# source, a Python environment with ComfyUI's requirements, comfyx and the variant's torch, and two
# programs:
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
  runCommand,
  runtimeShell,
  comfyui-src,
  variant,
  # comfyx's default engine is BMF's, for pip and Nix alike; without it, comfyx serve falls back to
  # ComfyUI's stock executor with a warning at start-up.
  withBmf ? true,
  extraPythonPackages ? (ps: [ ]),
}:
let
  python = callPackage ./python.nix { inherit variant; };
  # comfyx's --backend: both Intel variants are `ipex` (an XPU through torch.xpu, else IPEX on the CPU).
  backend = lib.removeSuffix "-cpu" variant;
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
      ipex = [ ];
      ipex-cpu = [ ps.intel-extension-for-pytorch ];
      tpu = [ ps.torch-xla ];
    }
    .${variant};
  env = python.withPackages (
    ps:
    requirements ps
    ++ backendPackages ps
    ++ [ ps.comfyx ]
    ++ lib.optional withBmf ps.bmf
    ++ extraPythonPackages ps
  );
  # What `passthru.tests.imports` runs in the build sandbox, which has no accelerator: the
  # variant's torch and backend packages load their libraries.
  importCheck =
    {
      cpu = "import torch";
      cuda = "import torch";
      ipex = "import torch; assert torch.xpu._is_compiled(), torch.__version__";
      ipex-cpu = "import torch, intel_extension_for_pytorch";
      tpu = "import torch, torch_xla";
    }
    .${variant};
  launcher = replaceVars ./comfyui.sh {
    inherit runtimeShell backend;
    comfyx = "${env}/bin/comfyx";
    comfyui = "${comfyui-src}";
  };
in
stdenvNoCC.mkDerivation {
  pname = "comfyui-${variant}";
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
      variant
      backend
      python
      env
      comfyui-src
      withBmf
      ;
    # `nix build .#comfyui-ipex.tests.imports`
    tests.imports = runCommand "comfyui-${variant}-imports" { } ''
      export HOME=$TMPDIR PJRT_DEVICE=CPU
      ${env}/bin/python -c ${lib.escapeShellArg "${importCheck}; import torchvision, torchaudio, comfyx"}
      touch $out
    '';
  };
  meta = {
    description = "ComfyUI (${comfyui-src.version}) with comfyx, ${variant} variant";
    homepage = "https://github.com/Comfy-Org/ComfyUI";
    license = lib.licenses.gpl3Only;
    mainProgram = "comfyui";
    platforms = [ "x86_64-linux" ];
  };
}

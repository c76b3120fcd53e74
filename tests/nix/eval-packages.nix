# pkgs/comfyui/package.nix and python.nix for one backend, with nixpkgs' Python package set
# replaced by named stand-ins: which packages the environment gets, and which torch.
{
  lib,
  backend,
  withBmf ? false,
}:
let
  comfyxSources = builtins.fromJSON (builtins.readFile ../../pkgs/sources.json);

  stub =
    name: attrs:
    let
      self = {
        pname = name;
        inherit name;
      }
      // attrs
      // {
        overridePythonAttrs = f: stub name (attrs // (if builtins.isFunction f then f self else f));
        override = args: stub name (attrs // { overrideArgs = args; });
      };
    in
    self;

  # The part of nixpkgs' python3Packages the files read, plus what the overlay adds.
  base =
    self:
    lib.genAttrs [
      "torch"
      "torchvision"
      "torchaudio"
      "torch-bin"
      "torchvision-bin"
      "torchaudio-bin"
      "torchsde"
      "numpy"
      "einops"
      "transformers"
      "tokenizers"
      "sentencepiece"
      "safetensors"
      "aiohttp"
      "yarl"
      "pyyaml"
      "pillow"
      "scipy"
      "tqdm"
      "psutil"
      "alembic"
      "sqlalchemy"
      "av"
      "kornia"
      "spandrel"
      "pydantic"
      "pydantic-settings"
      "comfyui-frontend-package"
      "comfyui-workflow-templates"
      "comfyui-embedded-docs"
      "comfyx"
      "comfyx-kernels"
      "bmf"
    ] (n: stub n { })
    // {
      callPackage = path: _: stub (lib.removeSuffix ".nix" (baseNameOf path)) { };
      toPythonModule = drv: drv;
    };

  comfyxPython = {
    override =
      { packageOverrides, ... }:
      let
        ps = lib.fix (lib.extends packageOverrides base);
      in
      {
        pkgs = ps;
        withPackages = f: stub "env" { packages = f ps; };
      };
  };

  callPackage =
    path: args:
    if baseNameOf path == "python.nix" then
      import path (
        {
          inherit lib comfyxPython comfyxSources;
          cudaPackages = { };
          fetchComfyxWheel = name: "wheel:${name}";
        }
        // args
      )
    else
      throw "unexpected callPackage ${toString path}";

  drv = import ../../pkgs/comfyui/package.nix {
    inherit lib callPackage backend withBmf;
    stdenvNoCC.mkDerivation = attrs: attrs;
    makeWrapper = "makeWrapper";
    replaceVars = path: vars: vars;
    runtimeShell = "/bin/sh";
    comfyui-src = {
      version = "0.3.64";
      outPath = "/nix/store/src";
    };
  };
  env = drv.passthru.env;
  torch = lib.findFirst (p: p.name == "torch" || p.name == "torch-bin") null env.packages;
in
{
  inherit (drv) pname version;
  packages = map (p: p.name) env.packages;
  torch = {
    inherit (torch) name;
    version = torch.version or null;
    src = torch.src or null;
    dontCheckRuntimeDeps = torch.dontCheckRuntimeDeps or false;
  };
  uncheckedTransformers = !((lib.findFirst (p: p.name == "transformers") { } env.packages).doCheck or true);
  kernelsOverride = (lib.findFirst (p: p.name == "comfyx-kernels") { } env.packages).overrideArgs or null;
  launcher = removeAttrs drv.passthru [ "python" "env" ];
}

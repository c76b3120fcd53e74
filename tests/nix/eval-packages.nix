# pkgs/comfyui/package.nix and python.nix for one variant, with nixpkgs' Python package sets
# replaced by named stand-ins: which interpreter and packages the environment gets, which torch.
# The XPU wheels and the Intel runtime are built from their real files with stub builders, so their
# sources, dependencies and link inputs are what the files say.
{
  lib,
  variant,
  withBmf ? null, # null: the package's default
}:
let
  comfyxSources = builtins.fromJSON (builtins.readFile ../../pkgs/sources.json);
  fetchComfyxWheel = name: "wheel:${name}";

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

  # What the real package files take from pkgs besides the Python set.
  builders = {
    inherit lib comfyxSources fetchComfyxWheel;
    buildPythonPackage = attrs: stub attrs.pname (attrs // { outPath = "/nix/store/${attrs.pname}"; });
    stdenv.cc.cc.lib = stub "gcc-lib" { };
    autoPatchelfHook = stub "autoPatchelfHook" { };
    level-zero = stub "level-zero" { };
    libffi = stub "libffi" { };
    zlib = stub "zlib" { };
  };
  # Files whose real contents are evaluated; the others become stand-ins named after the file.
  evaluated = [
    "xpu-wheel.nix"
    "intel-xpu-runtime.nix"
  ];

  # The part of nixpkgs' python3*Packages the files read, plus what the overlay adds.
  base =
    interpreter: self:
    lib.genAttrs [
      "torch"
      "torchvision"
      "torchaudio"
      "torch-bin"
      "torchvision-bin"
      "torchaudio-bin"
      "triton"
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
      "filelock"
      "typing-extensions"
      "setuptools"
      "sympy"
      "networkx"
      "jinja2"
      "fsspec"
      "comfyui-frontend-package"
      "comfyui-workflow-templates"
      "comfyui-embedded-docs"
      "comfyx"
      "comfyx-kernels"
      "bmf"
    ] (n: stub n { })
    // {
      python = interpreter;
      callPackage =
        path: args:
        if builtins.elem (baseNameOf path) evaluated then
          lib.callPackageWith (builders // self) path args
        else
          stub (lib.removeSuffix ".nix" (baseNameOf path)) { };
      toPythonModule = drv: drv;
    };

  interpreter = version: {
    pythonVersion = version;
    sitePackages = "lib/python${version}/site-packages";
    override =
      { packageOverrides, ... }:
      let
        ps = lib.fix (lib.extends packageOverrides (base (interpreter version)));
      in
      {
        pkgs = ps;
        withPackages =
          f:
          stub "env" {
            packages = f ps;
            inherit ps;
            pythonVersion = version;
            outPath = "/nix/store/env";
          };
      };
  };

  callPackage =
    path: args:
    if baseNameOf path == "python.nix" then
      import path (
        {
          inherit lib comfyxSources fetchComfyxWheel;
          comfyxPython = interpreter "3.13";
          python312 = interpreter "3.12";
          cudaPackages = { };
        }
        // args
      )
    else
      throw "unexpected callPackage ${toString path}";

  drv = import ../../pkgs/comfyui/package.nix (
    {
      inherit lib callPackage variant;
      stdenvNoCC.mkDerivation = attrs: attrs;
      makeWrapper = "makeWrapper";
      replaceVars = path: vars: vars;
      runCommand = name: env: script: { inherit name script; };
      runtimeShell = "/bin/sh";
      comfyui-src = {
        version = "0.3.64";
        outPath = "/nix/store/src";
      };
    }
    // lib.optionalAttrs (withBmf != null) { inherit withBmf; }
  );
  env = drv.passthru.env;
  torch = lib.findFirst (p: p.name == "torch" || p.name == "torch-bin") null env.packages;
  names = map (p: p.name);
  # A package built from one of the `evaluated` files, as far as the tests look at it.
  built = p: {
    inherit (p) name version;
    src = p.src or null;
    srcs = p.srcs or null;
    dependencies = names (p.dependencies or [ ]);
    buildInputs = names (p.buildInputs or [ ]);
    nativeBuildInputs = names (p.nativeBuildInputs or [ ]);
    dontCheckRuntimeDeps = p.dontCheckRuntimeDeps or false;
    preFixup = p.preFixup or "";
    postInstall = p.postInstall or "";
    ignoreMissingDeps = p.autoPatchelfIgnoreMissingDeps or [ ];
    license = map (l: l.shortName) (lib.toList p.meta.license);
  };
in
{
  inherit (drv) pname version;
  inherit (env) pythonVersion;
  packages = names env.packages;
  torch = {
    inherit (torch) name;
    version = torch.version or null;
    src = torch.src or null;
    dontCheckRuntimeDeps = torch.dontCheckRuntimeDeps or false;
  };
  uncheckedTransformers = !((lib.findFirst (p: p.name == "transformers") { } env.packages).doCheck or true);
  kernelsOverride = (lib.findFirst (p: p.name == "comfyx-kernels") { } env.packages).overrideArgs or null;
  launcher = removeAttrs drv.passthru [
    "python"
    "env"
    "tests"
  ];
  importTest = drv.passthru.tests.imports;
  xpu = lib.optionalAttrs (variant == "ipex") (
    lib.mapAttrs (_: built) {
      inherit (env.ps)
        torch
        torchvision
        torchaudio
        triton
        intel-xpu-runtime
        ;
    }
  );
}

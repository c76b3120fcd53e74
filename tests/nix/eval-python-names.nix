# The flake's Python packages evaluated against a python3Packages that holds only the names nixpkgs
# has (nixpkgs-python-names.txt, read from a real nixpkgs tree) plus the ones pkgs/python-packages.nix
# adds. A name nixpkgs lacks then fails here as it fails against real nixpkgs ("undefined variable
# 'spandrel'", "attribute 'spandrel' missing", "called without required argument"), with nixpkgs'
# lib alone. The overlay, the per-variant Python sets, our package files, the dev shell and the
# checks that build Python environments are the real files; what they take from nixpkgs besides
# python3Packages is a stand-in (`topLevel`).
{
  lib,
  namesFile ? ./nixpkgs-python-names.txt,
}:
let
  # Sources are not read here (and Debian's Nix 2.8 lacks the builtin lib.fileset needs).
  lib' = lib // {
    fileset = lib.fileset // {
      toSource = { root, ... }: root;
    };
  };
  nixpkgsNames = lib.filter (l: l != "" && !lib.hasPrefix "#" l) (
    lib.splitString "\n" (builtins.readFile namesFile)
  );

  # What a derivation was built from, as the stand-ins record it.
  inputsOf =
    p:
    lib.filter (x: builtins.isAttrs x && x ? pname) (
      lib.concatMap (a: lib.toList (p.${a} or [ ])) [
        "dependencies"
        "propagatedBuildInputs"
        "build-system"
        "nativeBuildInputs"
        "buildInputs"
        "packages"
      ]
    );
  # Its out path forces every input's and its build script, so that whatever interpolates it
  # evaluates the whole dependency tree and each name in it.
  drv =
    origin: name: attrs:
    let
      self = {
        type = "derivation";
        inherit name origin;
        pname = name;
      }
      // attrs
      // {
        outPath = builtins.deepSeq [
          (map (p: p.outPath) (inputsOf attrs))
          (attrs.script or "")
          (attrs.installPhase or "")
        ] "/nix/store/${name}";
        overridePythonAttrs = f: drv origin name (attrs // (if builtins.isFunction f then f self else f));
        override = args: drv origin name (attrs // args);
      };
    in
    self;

  interpreter =
    pkgs: version: packageOverrides:
    let
      python = {
        pythonVersion = version;
        sitePackages = "lib/python${version}/site-packages";
        pkgs = pythonSet pkgs python packageOverrides;
        withPackages = f: drv "env" "python${version}-env" { packages = f python.pkgs; };
        override = args: interpreter pkgs version args.packageOverrides;
      };
    in
    python;

  # nixpkgs' order: its own set, then pythonPackagesExtensions (our python-packages.nix), then the
  # interpreter's packageOverrides (pkgs/comfyui/python.nix).
  pythonSet =
    pkgs: python: packageOverrides:
    let
      base =
        self:
        lib.genAttrs nixpkgsNames (n: drv "nixpkgs-python" n { })
        // {
          # nixpkgs' helpers of the same names, as far as our files use them.
          inherit python pkgs;
          inherit (pkgs) lib stdenv;
          callPackage = lib.callPackageWith (pkgs // self);
          buildPythonPackage = attrs: drv "ours" attrs.pname attrs;
        };
    in
    lib.fix (lib.foldl' (f: ext: lib.extends ext f) base (pkgs.pythonPackagesExtensions ++ [ packageOverrides ]));

  stub = name: drv "nixpkgs" name { };
  topLevel = self: {
    lib = lib';
    callPackage = lib.callPackageWith self;
    config.cudaSupport = false;
    path = "/nix/store/nixpkgs";
    pythonPackagesExtensions = [ ];
    python3 = interpreter self "3.13" (_: _: { });
    python312 = interpreter self "3.12" (_: _: { });
    python313 = interpreter self "3.13" (_: _: { });
    runtimeShell = "/bin/sh";
    stdenv.cc.cc.lib = stub "gcc-lib";
    stdenvNoCC.mkDerivation = attrs: drv "nixpkgs" attrs.pname (attrs // attrs.passthru or { });
    mkShell = attrs: drv "nixpkgs" "shell" attrs;
    runCommand = name: env: script: drv "nixpkgs" name (env // { inherit script; });
    replaceVars = path: vars: drv "nixpkgs" (baseNameOf path) vars;
    fetchurl = args: drv "nixpkgs" "fetchurl" args;
    fetchPypi = args: drv "nixpkgs" "fetchPypi" args;
    fetchFromGitHub = args: drv "nixpkgs" "fetchFromGitHub" args;
    cudaPackages = lib.genAttrs [ "cuda_cccl" "cuda_cudart" "cuda_nvcc" ] stub;
  }
  // lib.genAttrs [
    "autoPatchelfHook"
    "backward-cpp"
    "cmake"
    "dlpack"
    "ffmpeg"
    "fmt"
    "gbenchmark"
    "git"
    "gtest"
    "level-zero"
    "libffi"
    "libuuid"
    "makeWrapper"
    "ninja"
    "nix"
    "nixfmt"
    "nlohmann_json"
    "pkg-config"
    "ruff"
    "spdlog"
    "zlib"
  ] stub;

  pkgs = lib.fix (lib.extends (import ../../overlays/default.nix) topLevel);

  # Every node's Python dependencies and BMF, so that the largest environment of each variant is
  # evaluated.
  nodes = lib.filter (n: n ? pythonDeps) (builtins.attrValues pkgs.comfyuiNodes);
  fullEnv =
    variant:
    (pkgs."comfyui-${variant}".override {
      withBmf = true;
      extraPythonPackages = ps: lib.concatMap (n: n.pythonDeps ps) nodes;
    }).env;

  closure =
    roots:
    map (e: e.p) (
      builtins.genericClosure {
        startSet = map (p: {
          key = p.pname;
          inherit p;
        }) roots;
        operator =
          e:
          map (p: {
            key = p.pname;
            inherit p;
          }) (inputsOf e.p);
      }
    );
  # The Python packages an environment holds, by where they come from.
  names =
    env:
    let
      ps = closure env.packages;
      from = o: lib.sort lib.lessThan (map (p: p.pname) (lib.filter (p: p.origin == o) ps));
    in
    {
      nixpkgs = from "nixpkgs-python";
      ours = from "ours";
    };
in
{
  variants = lib.genAttrs [ "cpu" "cuda" "ipex" "ipex-cpu" "tpu" ] (v: names (fullEnv v));
  # Evaluated through their out paths: each interpolates the environments it builds.
  devShell = (import ../../pkgs/dev-shell.nix { inherit pkgs; }).outPath;
  checks = lib.genAttrs [ "python-tests" "module-eval" ] (
    c: (pkgs.callPackage ../../checks/${c}.nix { }).outPath
  );
  ours = builtins.attrNames (import ../../pkgs/python-packages.nix { } { });
  nixpkgsNames = builtins.length nixpkgsNames;
}

# The flake's outputs, evaluated with nixpkgs' lib standing in for nixpkgs: only attribute names
# and plain values are read, so nothing ever imports nixpkgs itself (which cannot be evaluated
# here). Also the ComfyUI source's fetch and patch list, with the fetchers stubbed.
{
  lib,
  comfyuiSrcPackage ? ../../pkgs/comfyui-src/package.nix,
}:
let
  flake = import ../../flake.nix;
  nixpkgs = {
    inherit lib;
    outPath = throw "nixpkgs itself is not available to this test";
  };
  self = flake.outputs { inherit self nixpkgs; };
  system = "x86_64-linux";
  names = lib.mapAttrs (_: v: builtins.attrNames v);

  comfyxSources = builtins.fromJSON (builtins.readFile ../../pkgs/sources.json);
  fetchComfyxSource = import ../../pkgs/fetch-source.nix {
    inherit lib comfyxSources;
    fetchFromGitHub = args: args;
  };
  src = import comfyuiSrcPackage {
    inherit lib comfyxSources fetchComfyxSource;
    stdenvNoCC.mkDerivation = args: args;
  };
in
{
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  outputs = builtins.attrNames self;
  perSystem = names {
    inherit (self) packages apps checks devShells;
  };
  systems = names {
    inherit (self) packages apps checks devShells formatter;
  };
  hasFormatter = self.formatter ? ${system};
  modules = {
    nixos = toString self.nixosModules.default;
    homeManager = toString self.homeManagerModules.default;
  };
  packageNames = builtins.attrNames self.packages.${system};
  appNames = builtins.attrNames self.apps.${system};
  checkNames = builtins.attrNames self.checks.${system};
  overlayNames = builtins.attrNames (self.overlays.default { } { });
  pythonPackageNames = builtins.attrNames (import ../../pkgs/python-packages.nix { } { });

  comfyuiSrc = {
    inherit (src) pname version;
    patches = map toString src.patches;
    fetch = src.src;
    # An entry without `exclude` fetches the whole tree (no sparse checkout).
    wholeTree = fetchComfyxSource "stduuid";
    sparse = fetchComfyxSource "bmf";
  };
}

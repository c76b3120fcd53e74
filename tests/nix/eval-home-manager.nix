# Evaluates modules/home-manager/comfyui.nix with nixpkgs' lib alone and stubs of the Home
# Manager options it sets; returns what the tests check, as JSON.
{
  lib,
  userModule ? { },
}:
let
  stubs = import ./stubs.nix { inherit lib; };
  inherit (lib) mkOption types;

  hmStubs =
    { config, ... }:
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        home.homeDirectory = mkOption {
          type = types.str;
          default = "/home/alice";
        };
        home.packages = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        home.file = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options.source = mkOption { type = types.unspecified; };
            }
          );
        };
        systemd.user.services = mkOption {
          type = types.attrsOf types.anything;
          default = { };
        };
        xdg.dataHome = mkOption {
          type = types.str;
          default = "/home/alice/.local/share";
        };
        lib = mkOption {
          type = types.attrsOf types.attrs;
          default = { };
        };
      };
      # Home Manager's helper makes a store link to a path outside the store; a marker will do.
      config.lib.file.mkOutOfStoreSymlink = path: "out-of-store:${toString path}";
    };

  eval = lib.evalModules {
    modules = [
      hmStubs
      ../../modules/home-manager/comfyui.nix
      { _module.args.pkgs = stubs.pkgs; }
      userModule
    ];
  };
  inherit (eval) config;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;
  service = config.systemd.user.services.comfyui or null;
  files = lib.mapAttrs (_: f: toString f.source) config.home.file;
  packages = map (p: p.name) config.home.packages;
  finalPackage = (lib.findFirst (p: p ? overridden) { } config.home.packages).overridden or null;
  workspace = config.programs.comfyui.workspace.directory;
  symlinks = config.programs.comfyui.models.symlinks;
}

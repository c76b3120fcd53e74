# Evaluates modules/nixos/comfyui.nix with nixpkgs' lib alone, the NixOS options it sets
# declared by stubs, and `userModule` as the configuration; returns what the tests check, as JSON.
#   nix-instantiate --eval --strict --json tests/nix/eval-nixos.nix --arg lib 'import <nixpkgs-lib>' \
#     --arg userModule '{ services.comfyui.enable = true; }'
{
  lib,
  userModule ? { },
}:
let
  stubs = import ./stubs.nix { inherit lib; };
  inherit (lib) mkOption types;
  anything = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };

  nixosStubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      users.users = anything;
      users.groups = anything;
      networking.firewall.allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      systemd.tmpfiles.settings = anything;
      systemd.services = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            options = {
              description = mkOption { type = types.str; };
              wantedBy = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              after = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              environment = mkOption {
                type = types.attrsOf types.str;
                default = { };
              };
              preStart = mkOption {
                type = types.lines;
                default = "";
              };
              serviceConfig = anything;
            };
          }
        );
      };
    };
  };

  eval = lib.evalModules {
    specialArgs.modulesPath = ./fake-nixos-modules;
    modules = [
      nixosStubs
      ./fake-nixos-modules/services/misc/comfyui.nix
      ../../modules/nixos/comfyui.nix
      { _module.args.pkgs = stubs.pkgs; }
      userModule
    ];
  };
  inherit (eval) config;
  cfg = config.services.comfyui;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;
  unit = config.systemd.services.comfyui or null;
  users = lib.mapAttrs (_: u: builtins.removeAttrs u [ ]) config.users.users;
  groups = builtins.attrNames config.users.groups;
  firewallPorts = config.networking.firewall.allowedTCPPorts;
  tmpfiles = config.systemd.tmpfiles.settings;
  package = cfg.package.name;
  finalPackage = {
    inherit (cfg.finalPackage) name;
    overridden = cfg.finalPackage.overridden or null;
  };
  extraArgs = cfg.extraArgs;
  defaults = {
    inherit (cfg) dataDir;
    inherit (cfg.server) host port cors;
    modelsPath = cfg.models.path;
    inherit (cfg.models) autoDownload;
    modelFiles = cfg.models.files; # forces every field through its type
    cache = cfg.models.cache;
    inherit (cfg) outputCache engine;
    backend = cfg.backend;
    inherit (cfg) openFirewall;
  };
}

# The system configurations tools/real-nixpkgs-eval.py evaluates against a real nixpkgs tree: a
# NixOS system per backend with services.comfyui, and a Home Manager user with programs.comfyui,
# each importing this repository's module (the flake's nixosModules.default and
# homeManagerModules.default) as a user's configuration does.
{
  nixpkgs, # a nixpkgs tree (path)
  homeManager ? null, # a Home Manager tree (path)
  system ? "x86_64-linux",
}:
let
  lib = import (nixpkgs + "/lib");
  nixosSystem =
    module:
    (import (nixpkgs + "/nixos/lib/eval-config.nix") {
      inherit system;
      modules = [
        ../modules/nixos/comfyui.nix
        {
          boot.loader.grub.enable = false;
          fileSystems."/" = {
            device = "none";
            fsType = "tmpfs";
          };
          system.stateVersion = "25.11";
        }
        module
      ];
    }).config;
  # The whole system, and the service's own unit file: where the system reaches something the
  # nixpkgs tree lacks, the unit still shows whether the module evaluates.
  outputs = config: {
    toplevel = config.system.build.toplevel;
    unit = config.systemd.units."comfyui.service".unit;
  };

  # Without the overlay in `pkgs`: the module adds it itself. Non-CPU backends take unfree
  # packages (CUDA, Intel's runtime, libtpu), as README.md tells users.
  backend =
    type:
    nixosSystem {
      services.comfyui = {
        enable = true;
        backend.type = type;
      };
      nixpkgs.config.allowUnfree = type != "cpu";
    };
in
{
  nixos = lib.mapAttrs (_: outputs) {
    cpu = backend "cpu";
    cuda = backend "cuda";
    ipex = backend "ipex";
    tpu = backend "tpu";
    # IPEX on a Xeon CPU: README.md's `package = pkgs.comfyui-ipex-cpu`, with the overlay applied.
    ipex-cpu = nixosSystem (
      { pkgs, ... }:
      {
        nixpkgs.overlays = [ (import ../overlays/default.nix) ];
        nixpkgs.config.allowUnfree = true;
        services.comfyui = {
          enable = true;
          backend.type = "ipex";
          package = pkgs.comfyui-ipex-cpu;
        };
      }
    );
  };

  homeManager =
    assert homeManager != null || throw "no Home Manager tree given";
    (import (homeManager + "/modules") {
      pkgs = import nixpkgs { inherit system; };
      configuration = {
        imports = [ ../modules/home-manager/comfyui.nix ];
        programs.comfyui.enable = true;
        home = {
          username = "comfyui";
          homeDirectory = "/home/comfyui";
          stateVersion = "25.11";
        };
      };
    }).activationPackage;
}

{
  description = "comfyx: ComfyUI on NVIDIA (CUDA), Intel (XPU, IPEX), TPU and CPU, installed declaratively";

  # One input only: every other source is a fixed-output fetch pinned in pkgs/sources.json,
  # so `nix flake update` moves nixpkgs and nothing else.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # The accelerator wheels (CUDA and XPU torch, IPEX, torch_xla, libtpu) exist for x86_64 Linux only.
      systems = [ "x86_64-linux" ];
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ self.overlays.default ];
          # The CUDA libraries the torch wheels link against, and Intel's runtime, are unfree.
          config.allowUnfree = true;
        };
      forAllSystems = f: lib.genAttrs systems (system: f (pkgsFor system));
    in
    {
      overlays.default = import ./overlays/default.nix;

      packages = forAllSystems (pkgs: {
        default = pkgs.comfyui-cpu;
        inherit (pkgs)
          comfyui-cpu
          comfyui-cuda
          comfyui-ipex
          comfyui-ipex-cpu
          comfyui-tpu
          comfyui-src
          bmf
          ;
        inherit (pkgs.comfyxPython.pkgs) comfyx comfyx-kernels;
      });

      # `nix run` starts ComfyUI through `comfyx serve` on the CPU; `nix run .#cuda` etc. pick a
      # backend: `.#ipex` an Intel GPU, `.#ipex-cpu` IPEX on a Xeon CPU.
      apps = forAllSystems (
        pkgs:
        let
          app = pkg: {
            type = "app";
            program = lib.getExe pkg;
          };
        in
        {
          default = app pkgs.comfyui-cpu;
          cpu = app pkgs.comfyui-cpu;
          cuda = app pkgs.comfyui-cuda;
          ipex = app pkgs.comfyui-ipex;
          ipex-cpu = app pkgs.comfyui-ipex-cpu;
          tpu = app pkgs.comfyui-tpu;
          comfyx = {
            type = "app";
            program = "${pkgs.comfyui-cpu}/bin/comfyx";
          };
        }
      );

      # The modules take their packages from `pkgs` when the overlay is applied there and apply
      # it themselves otherwise, so they work with the user's own nixpkgs.
      nixosModules.default = ./modules/nixos/comfyui.nix;
      homeManagerModules.default = ./modules/home-manager/comfyui.nix;

      checks = forAllSystems (pkgs: import ./checks { inherit pkgs self; });

      devShells = forAllSystems (pkgs: {
        default = import ./pkgs/dev-shell.nix { inherit pkgs; };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt); # the RFC 166 style, nixpkgs' own
    };
}

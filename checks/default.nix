# `nix flake check`: what needs real nixpkgs (builds, sandboxed test runs, NixOS VMs).
# The module-evaluation tests also run without nixpkgs (python -m pytest tests/nix).
{ pkgs, self }:
let
  tinyCheckpoint = pkgs.callPackage ./tiny-checkpoint.nix { };
  # What every VM test machine has: our module, room for torch and the checkpoint, curl.
  vmBase = {
    imports = [ self.nixosModules.default ];
    virtualisation = {
      memorySize = 4096;
      diskSize = 4096;
      cores = 2;
    };
    environment.systemPackages = [ pkgs.curl ];
  };
in
{
  # The default package and the CPU Python extension build; comfyx runs in them.
  inherit (pkgs) comfyui-cpu;
  comfyx-kernels = pkgs.comfyxPython.pkgs.comfyx-kernels;
  comfyx-smoke = pkgs.runCommand "comfyx-smoke" { } ''
    export HOME=$TMPDIR
    ${pkgs.comfyui-cpu}/bin/comfyx --version
    ${pkgs.comfyui-cpu}/bin/comfyx doctor --json > $out
  '';

  # The repository's Python suites on the CPU, against the store copy of ComfyUI.
  python-tests = pkgs.callPackage ./python-tests.nix { };

  # tests/nix with the real nixpkgs lib of this flake's nixpkgs.
  module-eval = pkgs.callPackage ./module-eval.nix { };

  # NixOS VM tests.
  vm-cpu = import ./vm-cpu.nix { inherit pkgs vmBase tinyCheckpoint; };
  vm-ollama = import ./vm-ollama.nix { inherit pkgs vmBase tinyCheckpoint; };
}

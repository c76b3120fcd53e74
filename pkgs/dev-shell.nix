# `nix develop`: the CPU ComfyUI environment plus the tools the repository's tests and
# benchmarks use; comfyx itself is run from python/ (PYTHONPATH), not from the store.
{ pkgs }:
let
  comfyui = pkgs.comfyui-cpu.override {
    extraPythonPackages = ps: [
      ps.pytest
      ps.pytest-timeout
      ps.scikit-build-core
      ps.nanobind
      ps.hatchling
    ];
  };
in
pkgs.mkShell {
  packages = [
    comfyui.env
    pkgs.cmake
    pkgs.ninja
    pkgs.nixfmt
    pkgs.ruff
  ];
  env.COMFYUI_PATH = "${pkgs.comfyui-src}";
  shellHook = ''
    export PYTHONPATH="$PWD/python/comfyx''${PYTHONPATH:+:$PYTHONPATH}"
  '';
}

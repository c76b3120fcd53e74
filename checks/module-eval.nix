# tests/nix (every .nix file parses; the modules evaluate to the intended units) against this
# flake's nixpkgs lib, in the sandbox. Nix needs a private store and state directory there. comfyx
# itself (no torch) checks that the modules' options render its settings' flags.
{
  lib,
  path,
  runCommand,
  nix,
  git,
  python3,
}:
let
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../flake.nix
      ../flake.lock # test_update_hashes reads its pins
      ../overlays
      ../pkgs
      ../modules
      ../checks
      ../tests/nix
      # test_python_names evaluates our Python packages, which read their pyproject files;
      # test_real_nixpkgs checks the script's input handling (its evaluation skips here).
      ../python/comfyx/pyproject.toml
      ../python/comfyx-kernels/pyproject.toml
      ../tools
      ../README.md # test_settings_table: the README shows the settings table
      (lib.fileset.maybeMissing ../patches)
    ];
  };
  python = python3.withPackages (ps: [
    ps.pytest
    ps.comfyx
  ]);
in
runCommand "comfyx-module-eval"
  {
    nativeBuildInputs = [
      nix
      git
      python
    ];
  }
  ''
    export HOME=$TMPDIR NIX_STATE_DIR=$TMPDIR/nix/var NIX_LOG_DIR=$TMPDIR/nix/log
    export NIX_CONF_DIR=$TMPDIR/nix/etc NIX_STORE_DIR=$TMPDIR/nix/store
    nix-store --init
    export NIXPKGS_LIB=${path}/lib
    cp -r ${src} src && chmod -R u+w src && cd src
    python -m pytest -p no:cacheprovider tests/nix | tee $out
  ''

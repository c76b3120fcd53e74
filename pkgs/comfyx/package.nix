# The comfyx Python distribution from this repository (python/comfyx, hatchling).
{
  lib,
  buildPythonPackage,
  hatchling,
  python,
}:
let
  root = ../..;
  pyproject = lib.importTOML ../../python/comfyx/pyproject.toml;
  requirements = import ../requirements.nix { inherit lib; };
in
buildPythonPackage {
  pname = "comfyx";
  inherit (pyproject.project) version;
  pyproject = true;

  # Only python/comfyx and the README (its pyproject reads ../../README.md as the long
  # description), so that edits elsewhere in the repository do not rebuild it.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../../python/comfyx
      (lib.fileset.maybeMissing ../../README.md)
    ];
  };
  sourceRoot = "source/python/comfyx";

  build-system = [ hatchling ];
  # pyproject's [project] dependencies, so that a dependency added there is added here.
  dependencies = requirements python.pkgs pyproject.project.dependencies;
  # The `bmf` extra is satisfied by the bmf package built from source (pkgs/bmf), which the
  # ComfyUI environments add themselves; pip's babitmf wheel is not used.

  pythonImportsCheck = [ "comfyx" ];

  meta = {
    description = "Run ComfyUI faster on NVIDIA, Intel and TPU hardware";
    license = lib.licenses.asl20;
    mainProgram = "comfyx";
  };
}

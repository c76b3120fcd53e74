# pkgs/requirements.nix on comfyx's pyproject and on sample requirement strings.
{ lib }:
let
  requirements = import ../../pkgs/requirements.nix { inherit lib; };
  pyproject = lib.importTOML ../../python/comfyx/pyproject.toml;
  # Stand-in package set: every attribute is its own name.
  ps = lib.genAttrs [
    "packaging"
    "platformdirs"
    "tqdm"
    "pytest"
    "pytest-timeout"
    "aiohttp"
    "numpy"
    "safetensors"
    "websocket-client"
    "pyyaml"
  ] (n: n);
in
{
  dependencies = requirements ps pyproject.project.dependencies;
  test = requirements ps pyproject.project.optional-dependencies.test;
  samples = requirements ps [
    "websocket-client>=1.6"
    "PyYAML"
    "pytest-timeout >= 2.3"
    "tqdm[notebook]>=4"
  ];
}

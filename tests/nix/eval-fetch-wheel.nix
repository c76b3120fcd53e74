# pkgs/fetch-wheel.nix for every wheel in sources.json, with fetchers that return their arguments.
{ lib }:
let
  comfyxSources = builtins.fromJSON (builtins.readFile ../../pkgs/sources.json);
  fetchComfyxWheel = import ../../pkgs/fetch-wheel.nix {
    inherit lib comfyxSources;
    fetchPypi = args: args // { fetcher = "fetchPypi"; };
    fetchurl = args: args // { fetcher = "fetchurl"; };
  };
  wheels = lib.filterAttrs (
    name: s:
    !lib.hasPrefix "_" name
    && builtins.elem s.type [
      "pypi-wheel"
      "url-wheel"
    ]
  ) comfyxSources;
in
{
  fetches = lib.mapAttrs (name: _: fetchComfyxWheel name) wheels;
  # A GitHub tree is no wheel: asking for one is an evaluation error, not a wrong fetch.
  notAWheel = (builtins.tryEval (fetchComfyxWheel "comfyui")).success;
}

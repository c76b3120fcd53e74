# fetchPypi for a wheel pinned in sources.json, by its key there. The URL fetchPypi builds
# is the one pkgs/update-hashes.py downloads when it rechecks the hash.
{ fetchPypi, comfyxSources }:
name:
let
  s = comfyxSources.${name};
in
fetchPypi {
  inherit (s)
    pname
    version
    python
    abi
    platform
    hash
    ;
  format = "wheel";
  dist = s.python;
}

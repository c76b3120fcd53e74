# The wheel pinned in sources.json under `name`: fetchPypi for a `pypi-wheel` (the URL
# pkgs/update-hashes.py downloads when it rechecks the hash), fetchurl for a `url-wheel` (torch's
# XPU wheels, which only download.pytorch.org serves).
{
  lib,
  fetchPypi,
  fetchurl,
  comfyxSources,
}:
name:
let
  s = comfyxSources.${name};
in
if s.type == "url-wheel" then
  fetchurl {
    inherit (s) url hash;
    # The installer reads name and version from the file name; the URL writes the `+` of a local
    # version (2.10.0+xpu) as %2B, which is no valid store path character either.
    name = builtins.replaceStrings [ "%2B" ] [ "+" ] (baseNameOf s.url);
  }
else
  assert lib.assertMsg (s.type == "pypi-wheel") "sources.json: ${name} is a ${s.type}, not a wheel";
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

# PEP 508 requirement strings to nixpkgs Python packages by name, so that the Nix packages follow
# the pyproject files ("websocket-client>=1.6" -> ps.websocket-client). Markers and extras are not
# interpreted: the lists this is used on hold plain names with version bounds.
{ lib }:
ps: map (req: ps.${lib.toLower (builtins.head (builtins.match "([A-Za-z0-9_.-]+).*" req))})

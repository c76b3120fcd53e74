# fetchFromGitHub for a tree pinned in sources.json, by its key there.
#
# Paths listed under `exclude` are left out with a non-cone sparse checkout: the pin is then the
# NAR hash of the tree without them, which pkgs/update-hashes.py recomputes from a git mirror.
# An entry without `exclude` is the whole tree (GitHub's tarball, same hash).
{
  lib,
  fetchFromGitHub,
  comfyxSources,
}:
name:
let
  s = comfyxSources.${name};
  exclude = s.exclude or [ ];
in
fetchFromGitHub (
  {
    inherit (s)
      owner
      repo
      rev
      hash
      ;
  }
  // lib.optionalAttrs (exclude != [ ]) {
    sparseCheckout = [ "/*" ] ++ map (p: "!/${p}") exclude;
    nonConeMode = true;
  }
)

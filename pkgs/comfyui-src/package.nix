# ComfyUI's source at the pinned commit, with every patches/comfyui/*.patch applied in name
# order (the directory is read at evaluation time, so new patches need no change here).
# The fetch is the whole tree (its hash was recomputed by pkgs/update-hashes.py with the one
# blob our mirror lacked rebuilt by ./recover-llama-tokenizer.py and checked against its id).
{
  lib,
  stdenvNoCC,
  fetchComfyxSource,
  comfyxSources,
}:
let
  s = comfyxSources.comfyui;
  patchDir = ../../patches/comfyui;
  # attrNames is sorted, so patches apply in name order (10-foo.patch before 20-bar.patch).
  patchNames =
    if builtins.pathExists patchDir then
      builtins.attrNames (
        lib.filterAttrs (n: type: type == "regular" && lib.hasSuffix ".patch" n) (
          builtins.readDir patchDir
        )
      )
    else
      [ ];
in
# Not applyPatches: with no patches it returns the fetch itself, without the passthru below.
stdenvNoCC.mkDerivation {
  pname = "comfyui-src";
  inherit (s) version;
  src = fetchComfyxSource "comfyui";
  patches = map (n: patchDir + "/${n}") patchNames;
  dontConfigure = true;
  dontBuild = true;
  installPhase = ''
    runHook preInstall
    cp -r . $out
    runHook postInstall
  '';
  # The pinned tree plus our patches, nothing else (no shebang rewriting, no stripping).
  dontFixup = true;
  passthru = {
    inherit (s) rev;
  };
}

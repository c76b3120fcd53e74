# ComfyUI's source at the pinned commit, with every patches/comfyui/*.patch applied in name
# order (the directory is read at evaluation time, so new patches need no change here).
#
# sources.json excludes comfy/text_encoders/llama_tokenizer/tokenizer.json from the fetch: that
# 8 MB file (read only by the HunyuanVideo / llama text encoders, not on the SD1.5/SDXL path)
# could not be obtained where the pin was made, and a fixed-output hash must be computed from
# the exact tree it names. Dropping `exclude` there (and recomputing the hash with
# pkgs/update-hashes.py from a complete clone) restores the full tree.
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
    # The source lacks these paths; see the comment at the top.
    missing = s.exclude or [ ];
  };
}

# ComfyUI's source at the pinned commit, with every patches/comfyui/*.patch applied in name
# order (the directory is read at evaluation time, so new patches need no change here).
#
# The fetch is a non-cone sparse checkout that leaves out the paths listed under `exclude` in
# sources.json: comfy/text_encoders/llama_tokenizer/tokenizer.json (8 MB, only the
# HunyuanVideo / llama text encoders read it) could not be obtained where the pin was made, and a
# fixed-output hash must be computed from the exact tree it names. The hash is therefore the NAR
# hash of the commit's tree without that file, which pkgs/update-hashes.py recomputes from git.
{
  lib,
  stdenvNoCC,
  fetchFromGitHub,
  comfyxSources,
}:
let
  s = comfyxSources.comfyui;
  patchDir = ../../patches/comfyui;
  patchNames =
    if builtins.pathExists patchDir then
      lib.sort lib.lessThan (
        builtins.attrNames (
          lib.filterAttrs (n: type: type == "regular" && lib.hasSuffix ".patch" n) (
            builtins.readDir patchDir
          )
        )
      )
    else
      [ ];
in
# Not applyPatches: with no patches it returns the fetch itself, without the passthru below.
stdenvNoCC.mkDerivation {
  pname = "comfyui-src";
  inherit (s) version;
  src = fetchFromGitHub {
    inherit (s) owner repo rev hash;
    sparseCheckout = [ "/*" ] ++ map (p: "!/${p}") s.exclude;
    nonConeMode = true;
  };
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
    missing = s.exclude;
  };
}

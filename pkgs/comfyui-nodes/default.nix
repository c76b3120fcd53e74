# Custom node packages the flake provides, by name (the modules' `nodes.enable` picks from these),
# and `mkComfyUINode` to package more.
#
# A node package is a derivation holding the node's directory, with `passthru.pythonDeps`
# (ps: [ ... ]) naming the Python packages it imports: they go into ComfyUI's environment at
# build time, so nothing runs `pip install` when ComfyUI starts. The modules copy each node into
# the writable custom_nodes directory instead of linking the store path, because many nodes
# write next to their own code (configs, caches, downloaded weights).
{
  lib,
  stdenvNoCC,
  fetchComfyxSource,
  comfyxSources,
}:
let
  mkComfyUINode =
    {
      pname,
      version,
      src,
      pythonDeps ? (ps: [ ]),
      meta ? { },
    }:
    stdenvNoCC.mkDerivation {
      inherit
        pname
        version
        src
        meta
        ;
      dontBuild = true;
      installPhase = ''
        runHook preInstall
        cp -r . $out
        runHook postInstall
      '';
      passthru = { inherit pythonDeps; };
    };

  fromSources =
    name: args:
    mkComfyUINode (
      {
        pname = name;
        inherit (comfyxSources.${name}) version;
        src = fetchComfyxSource name;
      }
      // args
    );
in
{
  inherit mkComfyUINode;

  # GGUF-quantized UNet / text-encoder loaders.
  comfyui-gguf = fromSources "comfyui-gguf" {
    pythonDeps = ps: [
      ps.gguf
      ps.sentencepiece
      ps.protobuf
    ];
    meta.license = lib.licenses.asl20;
  };
}

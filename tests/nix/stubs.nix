# Stand-ins for what the modules take from nixpkgs, which cannot be evaluated where these tests
# run (only nixpkgs' lib is available). Derivations are attribute sets with a fake store path;
# `override` records its arguments so that tests can see what the module asked for.
{ lib }:
rec {
  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      pname = name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    }
    // extra;

  # Python packages a node or the module may name.
  pythonPackages = lib.genAttrs [ "gguf" "sentencepiece" "protobuf" "numpy" ] (
    n: fakeDrv "python3.13-${n}" { }
  );

  comfyui =
    backend:
    fakeDrv "comfyui-${backend}" {
      inherit backend;
      comfyui-src = fakeDrv "comfyui-src-0.3.64" { };
      env = fakeDrv "comfyui-${backend}-env" { };
      meta.mainProgram = "comfyui";
      override =
        args:
        comfyui backend
        // {
          overridden = {
            withBmf = args.withBmf or false;
            extraPythonPackages = map (p: p.name) ((args.extraPythonPackages or (_: [ ])) pythonPackages);
          };
        };
    };

  pkgs = {
    inherit lib;
    comfyui-cpu = comfyui "cpu";
    comfyui-cuda = comfyui "cuda";
    comfyui-ipex = comfyui "ipex";
    comfyui-ipex-cpu = comfyui "ipex-cpu";
    comfyui-tpu = comfyui "tpu";
    comfyuiNodes = {
      # callPackage adds these to the set, which is not a node.
      override = args: { };
      overrideDerivation = f: { };
      mkComfyUINode = args: fakeDrv args.pname args;
      comfyui-gguf = fakeDrv "comfyui-gguf" {
        pythonDeps = ps: [
          ps.gguf
          ps.sentencepiece
          ps.protobuf
        ];
      };
    };
    writeText = name: text: fakeDrv name { inherit text; };
    fetchurl = args: fakeDrv args.name { inherit (args) url hash; };
  };
}

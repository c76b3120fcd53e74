# comfyx's packages on top of nixpkgs.
#
# Python packages enter through pythonPackagesExtensions so that they exist in every
# python3*Packages set (and in the per-backend interpreters built from them). The ComfyUI
# builds use Python 3.13, nixpkgs' default, whose packages the public binary cache holds.
final: prev:
let
  comfyui = backend: final.callPackage ../pkgs/comfyui/package.nix { inherit backend; };
in
{
  # Every fixed-output pin except flake.lock; rechecked by pkgs/update-hashes.py.
  comfyxSources = builtins.fromJSON (builtins.readFile ../pkgs/sources.json);
  fetchComfyxWheel = final.callPackage ../pkgs/fetch-wheel.nix { };
  fetchComfyxSource = final.callPackage ../pkgs/fetch-source.nix { };
  comfyxPython = final.python313;

  pythonPackagesExtensions = prev.pythonPackagesExtensions ++ [
    (import ../pkgs/python-packages.nix)
  ];

  comfyui-src = final.callPackage ../pkgs/comfyui-src/package.nix { };
  bmf = final.comfyxPython.pkgs.bmf;
  comfyuiNodes = final.callPackage ../pkgs/comfyui-nodes { };

  comfyui-cpu = comfyui "cpu";
  comfyui-cuda = comfyui "cuda";
  comfyui-ipex = comfyui "ipex";
  comfyui-tpu = comfyui "tpu";
}

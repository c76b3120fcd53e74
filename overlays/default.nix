# comfyx's packages on top of nixpkgs.
#
# Python packages enter through pythonPackagesExtensions so that they exist in every
# python3*Packages set (and in the per-variant interpreters built from them). The ComfyUI
# builds use Python 3.13, nixpkgs' default, whose packages the public binary cache holds; the
# Intel GPU one uses 3.12, the only Python its pinned XPU wheels are built for.
final: prev:
let
  comfyui = variant: final.callPackage ../pkgs/comfyui/package.nix { inherit variant; };
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
  comfyui-ipex = comfyui "ipex"; # Intel GPUs (torch XPU wheels)
  comfyui-ipex-cpu = comfyui "ipex-cpu"; # Xeon CPUs (IPEX 2.8 on torch 2.8)
  comfyui-tpu = comfyui "tpu";
}

# Python packages added to every python3*Packages set (see overlays/default.nix).
pyfinal: pyprev:
let
  # ComfyUI's web frontend, templates and node docs are data-only wheels; ComfyUI's
  # requirements.txt pins their exact versions, which nixpkgs' copies may not match.
  dataWheel =
    name: module:
    pyfinal.callPackage ./python-wheels/data-wheel.nix { inherit name module; };
in
{
  comfyx = pyfinal.callPackage ./comfyx/package.nix { };
  comfyx-kernels = pyfinal.callPackage ./comfyx-kernels/package.nix { };
  bmf = pyfinal.callPackage ./bmf/package.nix { };
  # Not in our nixpkgs pin; one of ComfyUI's requirements.
  spandrel = pyfinal.callPackage ./spandrel/package.nix { };

  comfyui-frontend-package = dataWheel "comfyui-frontend-package" "comfyui_frontend_package";
  comfyui-workflow-templates = dataWheel "comfyui-workflow-templates" "comfyui_workflow_templates";
  comfyui-embedded-docs = dataWheel "comfyui-embedded-docs" "comfyui_embedded_docs";
}

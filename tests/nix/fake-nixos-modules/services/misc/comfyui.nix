# Stands in for nixpkgs' own services.comfyui: it declares an option our module declares too, so
# evaluation fails with "already declared" unless our module's disabledModules removes this file.
{ lib, ... }:
{
  options.services.comfyui.enable = lib.mkEnableOption "nixpkgs' ComfyUI";
}

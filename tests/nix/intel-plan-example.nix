# The example configuration of our Intel plan, as it was promised to users, verbatim but for one
# line: `nodes.enable = [ "controlnet-aux" "upscaling" ];` names node packages the flake does not
# provide yet (those come later), so it is left out. test_example_configuration.py evaluates the
# `services` half with the NixOS module and the `programs` half with the Home Manager one.
{
  services.comfyui = {
    enable = true;
    backend = {
      type = "ipex";
      device = "auto";
      optimization = "performance";
    };
    models = {
      path = "/var/lib/comfyui/models";
      autoDownload = true;
      cache = {
        enable = true;
        size = "10GB";
      };
    };
    nodes = {
      custom = [
        # custom node packages
      ];
    };
    server = {
      host = "127.0.0.1";
      port = 8188;
      cors = false;
    };
  };
  programs.comfyui = {
    enable = true;
    workspace = {
      directory = "~/comfyui-workspace";
      workflows = "~/comfyui-workflows";
    };
    models.symlinks = {
      checkpoints = "~/ai-models/checkpoints";
      loras = "~/ai-models/loras";
      controlnet = "~/ai-models/controlnet";
    };
    development = {
      enable = true;
      customNodes = [
        # development node packages
      ];
    };
  };
}

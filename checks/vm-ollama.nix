# NixOS VM: services.ollama and services.comfyui side by side, sharing one models directory
# (/srv/models, group `models`): both start, ComfyUI lists a checkpoint placed there, and Ollama
# serves with its own models directory inside it.
{
  pkgs,
  vmBase,
  tinyCheckpoint,
}:
let
  checkpoint = "comfyx_tiny_sd15.safetensors";
in
pkgs.testers.runNixOSTest {
  name = "comfyx-comfyui-with-ollama";
  nodes.machine = {
    imports = [ vmBase ];
    users.groups.models = { };
    systemd.tmpfiles.rules = [
      "d /srv/models 2775 root models -"
      "d /srv/models/checkpoints 2775 root models -"
      "d /srv/models/ollama 2775 root models -"
      "C /srv/models/checkpoints/${checkpoint} 0664 root models - ${tinyCheckpoint}"
    ];

    services.comfyui = {
      enable = true;
      models.path = "/srv/models";
    };
    users.users.comfyui.extraGroups = [ "models" ];
    systemd.services.comfyui.serviceConfig.SupplementaryGroups = [ "models" ];

    services.ollama = {
      enable = true;
      models = "/srv/models/ollama";
    };
    systemd.services.ollama.serviceConfig = {
      SupplementaryGroups = [ "models" ];
      ReadWritePaths = [ "/srv/models/ollama" ];
    };
  };
  testScript = ''
    import json

    machine.wait_for_unit("ollama.service")
    machine.wait_for_unit("comfyui.service")
    machine.wait_for_open_port(11434)
    machine.wait_for_open_port(8188, timeout=600)

    machine.succeed("curl -sf http://127.0.0.1:11434/api/tags")
    info = json.loads(machine.succeed("curl -sf http://127.0.0.1:8188/object_info/CheckpointLoaderSimple"))
    names = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert "${checkpoint}" in names, names

    # ComfyUI's user reads the shared files through the `models` group.
    machine.succeed("runuser -u comfyui -- test -r /srv/models/checkpoints/${checkpoint}")
    machine.succeed("test -d /srv/models/ollama")
  '';
}

# NixOS VM: services.comfyui on the CPU starts, answers /system_stats, and runs the txt2img
# workflow on a tiny checkpoint generated in the build. The workflow's wall time is the
# benchmark figure; it is printed and written to $out/benchmark.json.
{
  pkgs,
  vmBase,
  tinyCheckpoint,
}:
let
  checkpoint = "comfyx_tiny_sd15.safetensors";
  prompt = pkgs.writeText "txt2img.json" (
    builtins.toJSON { prompt = import ./workflow-txt2img.nix { inherit checkpoint; }; }
  );
in
pkgs.testers.runNixOSTest {
  name = "comfyx-comfyui-cpu";
  nodes.machine = {
    imports = [ vmBase ];
    services.comfyui = {
      enable = true;
      backend.type = "cpu";
    };
    # A plain copy: the unit removes links into the store that it did not declare itself.
    systemd.tmpfiles.rules = [
      "d /var/lib/comfyui/models/checkpoints 0750 comfyui comfyui -"
      "C /var/lib/comfyui/models/checkpoints/${checkpoint} - - - - ${tinyCheckpoint}"
    ];
  };
  testScript = ''
    import json, os, time

    machine.wait_for_unit("comfyui.service")
    machine.wait_for_open_port(8188, timeout=600)
    stats = json.loads(machine.succeed("curl -sf http://127.0.0.1:8188/system_stats"))
    assert stats["system"]["comfyui_version"] == "0.3.64", stats

    # The store copy of ComfyUI stays untouched: state is under /var/lib/comfyui.
    machine.succeed("test -f /var/lib/comfyui/user/comfyui.db")
    machine.succeed("systemctl show comfyui -p ProtectSystem | grep -qx ProtectSystem=strict")

    start = time.monotonic()
    machine.succeed("curl -sf -X POST -H 'Content-Type: application/json' --data @${prompt} http://127.0.0.1:8188/prompt")
    machine.wait_until_succeeds("ls /var/lib/comfyui/output/vmtest_*.png", timeout=900)
    seconds = time.monotonic() - start
    print(f"txt2img, tiny SD1.5, 64x64, 2 steps, CPU VM: {seconds:.2f} s")
    os.makedirs(os.environ["out"], exist_ok=True)
    with open(os.path.join(os.environ["out"], "benchmark.json"), "w") as f:
        json.dump({"workflow": "txt2img-tiny-sd15-64px-2steps", "backend": "cpu", "seconds": seconds}, f)
  '';
}

# programs.comfyui: ComfyUI for one user, as a systemd user service, with its workspace (models,
# workflows, custom nodes, outputs) in a directory the user owns.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkPackageOption
    mkIf
    types
    ;
  common = import ../common/comfyx.nix { inherit lib; };
  cfg = config.programs.comfyui;
  comfyxPkgs = common.comfyxPackages pkgs;
  dir = cfg.workspace.directory;

  package = common.finalPackage cfg.package cfg.backend [ ];
  outOfStore = config.lib.file.mkOutOfStoreSymlink;
in
{
  options.programs.comfyui = {
    enable = mkEnableOption "ComfyUI (comfyx) as a systemd user service";

    package = mkPackageOption comfyxPkgs "ComfyUI (comfyx)" {
      default = [ "comfyui-${cfg.backend.type}" ];
      pkgsText = "comfyx's packages";
      extraDescription = ''
        The default follows `backend.type`; with `ipex` it is `comfyui-ipex` (Intel GPUs), and
        `comfyui-ipex-cpu` runs IPEX on a Xeon CPU instead.
      '';
    };

    backend = mkOption {
      type = types.submodule common.backendModule;
      default = { };
      description = "Accelerator backend and devices.";
    };

    fast = mkOption {
      type = types.submodule common.fastModule;
      default = { };
      example = lib.literalExpression "{ enable = true; }";
      description = "comfyx's fast path: fp8 kernels, fp8 quantization at load, compilation.";
    };

    workspace = {
      directory = mkOption {
        type = types.str;
        default = "${config.xdg.dataHome}/comfyui";
        defaultText = lib.literalExpression ''"''${config.xdg.dataHome}/comfyui"'';
        description = ''
          ComfyUI's base directory: models, custom_nodes, input, output, temp and user data.
        '';
      };
      workflows = mkOption {
        type = types.attrsOf types.path;
        default = { };
        example = lib.literalExpression ''{ portrait = ./workflows/portrait.json; }'';
        description = ''
          Workflows to show in ComfyUI's workflow browser, linked as
          `user/default/workflows/<name>.json`.
        '';
      };
    };

    models.symlinks = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        "checkpoints/sd15.safetensors" = "/data/models/v1-5-pruned-emaonly.safetensors";
        "loras" = "/data/models/loras";
      };
      description = ''
        Links in the models directory, by path below `models/`, to files or directories
        outside the store (models are too large to copy into it).
      '';
    };

    development = {
      enable = mkEnableOption ''
        node development: the package's Python environment and `comfyx` on PATH, and
        `development.customNodes` linked into custom_nodes'';
      customNodes = mkOption {
        type = types.attrsOf types.str;
        default = { };
        example = {
          my-nodes = "/home/me/src/my-nodes";
        };
        description = ''
          Working copies of custom nodes, by node name, linked (not copied) into
          `custom_nodes/`, so that an edit takes effect when ComfyUI restarts.
        '';
      };
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--listen=0.0.0.0" ];
      description = "ComfyUI (main.py) flags, after the ones the package's `comfyui` sets.";
    };
  };

  config = mkIf cfg.enable {
    assertions = common.backendAssertions "programs.comfyui" cfg.backend ++ [
      {
        assertion = cfg.development.customNodes == { } || cfg.development.enable;
        message = "programs.comfyui.development.customNodes needs development.enable = true.";
      }
    ];

    # The environment also has a bin/comfyx; the package's (which sets COMFYUI_PATH) wins.
    home.packages = [ (lib.hiPrio package) ] ++ lib.optional cfg.development.enable package.env or package;

    home.file =
      lib.mapAttrs' (
        name: src:
        lib.nameValuePair "${dir}/user/default/workflows/${name}.json" { source = src; }
      ) cfg.workspace.workflows
      // lib.mapAttrs' (
        name: target: lib.nameValuePair "${dir}/models/${name}" { source = outOfStore target; }
      ) cfg.models.symlinks
      // lib.optionalAttrs cfg.development.enable (
        lib.mapAttrs' (
          name: target: lib.nameValuePair "${dir}/custom_nodes/${name}" { source = outOfStore target; }
        ) cfg.development.customNodes
      );

    systemd.user.services.comfyui = {
      Unit = {
        Description = "ComfyUI (comfyx, ${cfg.backend.type} backend)";
        After = [ "network.target" ];
      };
      Service = {
        ExecStart = lib.escapeShellArgs (
          [ "${package}/bin/comfyui" ]
          ++ common.fastFlags cfg.fast
          ++ [
            "--"
            "--disable-auto-launch"
          ]
          ++ cfg.extraArgs
        );
        Environment = lib.mapAttrsToList (n: v: "${n}=${v}") (
          {
            COMFYUI_DATA_DIR = dir;
          }
          // common.backendEnvironment cfg.backend
        );
        Restart = "on-failure";
        RestartSec = "5s";
      };
      Install.WantedBy = [ "default.target" ];
    };
  };
}

# programs.comfyui: ComfyUI for one user, as a systemd user service, with its workspace (models,
# workflows, custom nodes, outputs) in a directory the user owns. The service runs the package's
# launcher (`bin/comfyui`) with comfyx's settings as flags, as the NixOS unit does.
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
  home = config.home.homeDirectory;
  dir = cfg.workspace.directory;

  # "~/x" is the user's home's x. Without this a "~" passes a string type unexpanded and becomes a
  # directory named "~" (or a link into one).
  expandHome = path: if path == "~" then home else if lib.hasPrefix "~/" path then "${home}/${lib.removePrefix "~/" path}" else path;
  homePath =
    types.coercedTo types.str expandHome (types.strMatching "/.*")
    // {
      description = "absolute path, or one starting with ~/ (the user's home)";
    };

  # Node packages are linked from the store; working copies (development) are linked where they are.
  nodePackages = if builtins.isList cfg.development.customNodes then cfg.development.customNodes else [ ];
  workingCopies = if builtins.isAttrs cfg.development.customNodes then cfg.development.customNodes else { };
  package = common.finalPackage cfg.package cfg nodePackages;
  outOfStore = config.lib.file.mkOutOfStoreSymlink;

  workflows = cfg.workspace.workflows;
  workflowFiles =
    if workflows == null then
      { }
    else if builtins.isAttrs workflows && !(lib.isDerivation workflows) then
      lib.mapAttrs' (
        name: src: lib.nameValuePair "${dir}/user/default/workflows/${name}.json" { source = src; }
      ) workflows
    else
      {
        "${dir}/user/default/workflows".source =
          if builtins.isString workflows then outOfStore workflows else workflows;
      };
in
{
  # comfyx's settings (engine, backend, fast path, TPU, hardening, model cache, ...) as options.
  imports = [ (common.settingsModule [ "programs" "comfyui" ]) ];

  options.programs.comfyui = {
    enable = mkEnableOption "ComfyUI (comfyx) as a systemd user service";

    package = mkPackageOption comfyxPkgs "ComfyUI (comfyx)" {
      default = [ "comfyui-${cfg.backend.type}" ];
      pkgsText = "comfyx's packages";
      extraDescription = ''
        The default follows `backend.type`; with `ipex` it is `comfyui-ipex` (Intel GPUs), and
        `comfyui-ipex-cpu` runs IPEX on a Xeon CPU instead. Development node packages' Python
        dependencies and BMF are added with `.override`.
      '';
    };

    workspace = {
      directory = mkOption {
        type = homePath;
        default = "${config.xdg.dataHome}/comfyui";
        defaultText = lib.literalExpression ''"''${config.xdg.dataHome}/comfyui"'';
        example = "~/comfyui-workspace";
        description = ''
          ComfyUI's base directory: models, custom_nodes, input, output, temp and user data
          (`COMFYUI_DATA_DIR` of the launcher).
        '';
      };
      workflows = mkOption {
        type =
          types.nullOr (
            types.oneOf [
              homePath
              types.path
              (types.attrsOf types.path)
            ]
          )
          // {
            description = "null, a directory (absolute, ~/ or in the store), or an attribute set of workflow files";
          };
        default = null;
        example = "~/comfyui-workflows";
        description = ''
          Workflows to show in ComfyUI's workflow browser. A directory is linked as
          `user/default/workflows`: one of your own (absolute or `~/`; linked where it is, so that
          workflows saved from ComfyUI land there) or a path in your configuration (copied to the
          store, read-only). An attribute set of files (`{ portrait = ./portrait.json; }`) links each
          as `user/default/workflows/<name>.json`.
        '';
      };
    };

    models.symlinks = mkOption {
      type = types.attrsOf homePath;
      default = { };
      example = {
        checkpoints = "~/ai-models/checkpoints";
        "loras/detail.safetensors" = "/data/models/detail.safetensors";
      };
      description = ''
        Links in the models directory, by path below `models/`, to files or directories
        outside the store (models are too large to copy into it); `~/` is your home.
      '';
    };

    development = {
      enable = mkEnableOption ''
        node development: the package's Python environment and `comfyx` on PATH, and
        `development.customNodes` linked into custom_nodes'';
      customNodes = mkOption {
        type = types.either (types.listOf types.package) (types.attrsOf homePath) // {
          description = "list of node packages, or attribute set of working-copy paths";
        };
        default = [ ];
        example = lib.literalExpression ''[ (pkgs.comfyuiNodes.mkComfyUINode { pname = "my-nodes"; ... }) ]'';
        description = ''
          Custom nodes to develop with, linked into `custom_nodes/`: a list of node packages (see
          `comfyuiNodes.mkComfyUINode`; each linked under its name, its `passthru.pythonDeps` built
          into the environment), or an attribute set of working copies by node name
          (`{ my-nodes = "~/src/my-nodes"; }`, linked where they are, so that an edit takes effect
          when ComfyUI restarts).
        '';
      };
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--listen=0.0.0.0" ];
      description = ''
        ComfyUI (main.py) flags, after the ones the package's `comfyui` sets. comfyx's settings are
        options of their own (`engine`, `backend`, `fast`, `bmf`, `tpu`, `ipex`, `hardening`,
        `models.cache`).
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = common.backendAssertions "programs.comfyui" cfg.backend ++ [
      {
        assertion = cfg.development.customNodes == [ ] || cfg.development.customNodes == { } || cfg.development.enable;
        message = "programs.comfyui.development.customNodes needs development.enable = true.";
      }
      {
        assertion = cfg.models.cache.enable || cfg.models.cache.size == null;
        message = "programs.comfyui.models.cache.size is set but models.cache.enable is false.";
      }
    ];

    # The environment also has a bin/comfyx; the package's (which sets COMFYUI_PATH) wins.
    home.packages = [ (lib.hiPrio package) ] ++ lib.optional cfg.development.enable package.env or package;

    home.file =
      workflowFiles
      // lib.mapAttrs' (
        name: target: lib.nameValuePair "${dir}/models/${name}" { source = outOfStore target; }
      ) cfg.models.symlinks
      // lib.optionalAttrs cfg.development.enable (
        lib.mapAttrs' (
          name: target: lib.nameValuePair "${dir}/custom_nodes/${name}" { source = outOfStore target; }
        ) workingCopies
        // lib.listToAttrs (
          map (node: lib.nameValuePair "${dir}/custom_nodes/${lib.getName node}" { source = node; }) nodePackages
        )
      );

    systemd.user.services.comfyui = {
      Unit = {
        Description = "ComfyUI (comfyx, ${cfg.backend.type} backend)";
        After = [ "network.target" ];
      };
      Service = {
        ExecStart = common.launcherCommand package cfg ([ "--disable-auto-launch" ] ++ cfg.extraArgs);
        Environment = lib.mapAttrsToList (n: v: "${n}=${v}") (
          {
            COMFYUI_DATA_DIR = dir;
          }
          // common.deviceEnvironment cfg.backend
        );
        Restart = "on-failure";
        RestartSec = "5s";
      };
      Install.WantedBy = [ "default.target" ];
    };
  };
}

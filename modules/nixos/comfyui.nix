# services.comfyui: ComfyUI through `comfyx serve`, as a hardened system service.
#
# nixpkgs has a module of the same name; it is disabled here (see `disabledModules`) so the two
# never merge options into one unit. Everything ComfyUI writes lives under `dataDir` (state) and
# /var/cache/comfyui (compile caches); the store copy of ComfyUI stays read-only. The unit runs the
# package's launcher (`bin/comfyui`) with comfyx's settings as flags, as Home Manager's does.
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
    mkBefore
    types
    ;
  common = import ../common/comfyx.nix { inherit lib; };
  cfg = config.services.comfyui;
  comfyxPkgs = common.comfyxPackages pkgs;

  isDefaultDataDir = cfg.dataDir == "/var/lib/comfyui";
  modelsInDataDir = lib.hasPrefix "${cfg.dataDir}/" "${cfg.models.path}/";
  cacheDir = "/var/cache/comfyui";

  nodes = map (n: comfyxPkgs.comfyuiNodes.${n}) cfg.nodes.enable ++ cfg.nodes.custom;
  package = common.finalPackage cfg.package cfg nodes;
  loopback = [
    "127.0.0.1"
    "localhost"
    "::1"
  ];

  # ComfyUI reads models.path through an extra_model_paths file when it is not dataDir/models.
  # JSON is YAML, and `is_default` makes ComfyUI save downloads there too.
  extraModelPaths = pkgs.writeText "extra_model_paths.yaml" (
    builtins.toJSON {
      comfyx = {
        base_path = cfg.models.path;
        is_default = true;
      }
      // lib.genAttrs common.modelFolders (f: f);
    }
  );

  modelFile = m: "${cfg.models.path}/${m.type}/${m.name}";
  fetched = m: pkgs.fetchurl { inherit (m) name url hash; };

  # A node copy remembers the store path it came from, so it is replaced only when that changes
  # and copies of nodes no longer configured are removed (hand-installed nodes have no marker).
  syncNode = n: ''
    dst=${lib.escapeShellArg "${cfg.dataDir}/custom_nodes/${lib.getName n}"}
    if [ "$(cat "$dst/.comfyx-source" 2>/dev/null)" != ${lib.escapeShellArg "${n}"} ]; then
      rm -rf "$dst"
      cp -r --no-preserve=mode ${lib.escapeShellArg "${n}"} "$dst"
      echo ${lib.escapeShellArg "${n}"} > "$dst/.comfyx-source"
    fi
  '';
  nodeNames = map lib.getName nodes;

  deviceAllow = {
    cuda = [
      "char-nvidia-frontend rw" # /dev/nvidia[0-9]*, /dev/nvidiactl
      "char-nvidia-uvm rw"
      "char-nvidia-caps rw"
      "/dev/nvidia-modeset rw"
    ];
    ipex = [ "char-drm rw" ]; # /dev/dri/renderD*
    tpu = [
      "char-accel rw" # /dev/accel* (TPU v2-v4)
      "char-vfio rw" # /dev/vfio/* (TPU v5e and later)
    ];
    cpu = [ ];
  };
  supplementaryGroups = {
    cuda = [ "video" ];
    ipex = [
      "render"
      "video"
    ];
    tpu = [ ];
    cpu = [ ];
  };
in
{
  disabledModules = [ "services/misc/comfyui.nix" ];

  # comfyx's settings (engine, backend, fast path, TPU, hardening, model cache, ...) as options.
  imports = [ (common.settingsModule [ "services" "comfyui" ]) ];

  options.services.comfyui = {
    enable = mkEnableOption ''
      ComfyUI served by comfyx. This module replaces nixpkgs' `services.comfyui`, which is
      disabled when it is imported, so that the two never configure the same unit'';

    package = mkPackageOption comfyxPkgs "ComfyUI (comfyx)" {
      default = [ "comfyui-${cfg.backend.type}" ];
      pkgsText = "comfyx's packages";
      extraDescription = ''
        The default follows `backend.type` (`comfyui-cpu`, `comfyui-cuda`, `comfyui-ipex` for
        Intel GPUs, `comfyui-tpu`); with `ipex`, `comfyui-ipex-cpu` runs IPEX on a Xeon CPU
        instead. Node Python dependencies and BMF are added with `.override`.
      '';
    };

    finalPackage = mkOption {
      type = types.package;
      readOnly = true;
      default = package;
      defaultText = lib.literalMD "`package` with the nodes' Python dependencies (and BMF, for `engine = \"bmf\"`) added";
      description = "The package the unit runs.";
    };

    dataDir = mkOption {
      type = types.path;
      default = "/var/lib/comfyui";
      example = "/srv/comfyui";
      description = ''
        ComfyUI's state: custom nodes, inputs, outputs, user data, the database and (by default)
        models. The default is the unit's StateDirectory; another directory is created with
        systemd-tmpfiles and bind-mounted into the unit.
      '';
    };

    models = {
      path = mkOption {
        type = types.path;
        default = "${cfg.dataDir}/models";
        defaultText = lib.literalExpression ''"''${config.services.comfyui.dataDir}/models"'';
        example = "/srv/models";
        description = ''
          Models directory, with ComfyUI's folders (checkpoints, loras, vae, ...) below it. Point it
          at a directory other services use too (its owner and permissions are left to you).
        '';
      };
      autoDownload = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether the models in `models.files` are fetched by Nix (fixed-output, hash-checked) and
          linked into `models.path`. When false nothing is downloaded: the files must already be
          in place and the service refuses to start, naming the missing ones.
        '';
      };
      files = mkOption {
        default = [ ];
        description = "Model files to provide, each linked to `models.path/<type>/<name>`.";
        example = lib.literalExpression ''
          [ {
            name = "v1-5-pruned-emaonly.safetensors";
            url = "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/<commit>/v1-5-pruned-emaonly.safetensors";
            hash = "sha256-...";
            type = "checkpoints";
          } ]
        '';
        type = types.listOf (
          types.submodule {
            options = {
              name = mkOption {
                type = types.strMatching "[^/]+";
                description = "File name inside the type's folder.";
              };
              url = mkOption {
                type = types.str;
                description = "Download URL; pin a revision so that the hash stays valid.";
              };
              hash = mkOption {
                type = types.strMatching "sha256-[A-Za-z0-9+/]{43}=";
                description = "SRI sha256 of the file (`nix hash file`, `nix-prefetch-url`).";
              };
              type = mkOption {
                type = types.enum common.modelFolders;
                example = "checkpoints";
                description = "ComfyUI model folder the file belongs to.";
              };
            };
          }
        );
      };
    };

    nodes = {
      enable = mkOption {
        # Only the node packages: callPackage also adds `override` and the set has mkComfyUINode.
        type = types.listOf (
          types.enum (builtins.attrNames (lib.filterAttrs (_: lib.isDerivation) comfyxPkgs.comfyuiNodes))
        );
        default = [ ];
        example = [ "comfyui-gguf" ];
        description = "Custom node packages the flake provides, by name.";
      };
      custom = mkOption {
        type = types.listOf types.package;
        default = [ ];
        description = ''
          More node packages (see `comfyuiNodes.mkComfyUINode`); `passthru.pythonDeps` lists the
          Python packages a node needs, which go into the environment at build time.
        '';
      };
    };

    outputCache = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether ComfyUI keeps node outputs between prompts (off: ComfyUI's `--cache-none`). Before
          comfyx's model cache existed this was `models.cache.enable`, which is now the model cache's.
        '';
      };
      size = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        example = 32;
        description = ''
          Keep at most this many node results (ComfyUI's `--cache-lru N`); `null` keeps ComfyUI's
          default caching. Before comfyx's model cache existed this was `models.cache.size`, which is
          now the model cache's byte budget.
        '';
      };
    };

    server = {
      host = mkOption {
        type = types.coercedTo types.str (lib.splitString ",") (types.nonEmptyListOf types.str);
        default = [ "127.0.0.1" ];
        example = [
          "0.0.0.0"
          "::"
        ];
        description = "Addresses to listen on (ComfyUI's `--listen`); a comma-separated string is read as a list.";
      };
      port = mkOption {
        type = types.port;
        default = 8188;
        description = "Port to listen on.";
      };
      cors = mkOption {
        type = types.either types.bool types.str;
        default = false;
        example = "https://example.org";
        description = "Send CORS headers: `true` allows any origin, a string allows that origin.";
      };
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--preview-method=auto" ];
      description = ''
        ComfyUI (main.py) flags. The module's own come first (`mkBefore`), so a flag given here
        overrides them. comfyx's settings are options of their own (`engine`, `backend`, `fast`, `bmf`,
        `tpu`, `ipex`, `hardening`, `models.cache`).
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        PYTORCH_CUDA_ALLOC_CONF = "expandable_segments:True";
      };
      description = ''
        Extra environment of the unit; overrides the module's variables. A comfyx setting's variable
        (`COMFYX_...`) here loses to the flag its option renders, when that option is not its default.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open `server.port` in the firewall.";
    };
  };

  config = mkIf cfg.enable {
    assertions =
      common.backendAssertions "services.comfyui" cfg.backend
      ++ [
        {
          assertion = cfg.models.cache.enable || cfg.models.cache.size == null;
          message = "services.comfyui.models.cache.size is set but models.cache.enable is false.";
        }
        {
          assertion = cfg.outputCache.enable || cfg.outputCache.size == null;
          message = "services.comfyui.outputCache.size is set but outputCache.enable is false.";
        }
        {
          assertion = lib.allUnique (map modelFile cfg.models.files);
          message = "services.comfyui.models.files: two entries share a type and name.";
        }
        {
          assertion = lib.allUnique nodeNames;
          message = "services.comfyui.nodes: two node packages have the same name.";
        }
      ];
    warnings =
      lib.optional (cfg.openFirewall && lib.all (h: builtins.elem h loopback) cfg.server.host)
        "services.comfyui.openFirewall opens port ${toString cfg.server.port}, but server.host is ${lib.concatStringsSep "," cfg.server.host}.";

    # ComfyUI's own flags; the launcher adds --base-directory, --user-directory and --database-url
    # for $COMFYUI_DATA_DIR.
    services.comfyui.extraArgs = mkBefore (
      [
        "--listen=${lib.concatStringsSep "," cfg.server.host}"
        "--port=${toString cfg.server.port}"
        "--disable-auto-launch"
      ]
      ++ lib.optional (cfg.server.cors == true) "--enable-cors-header"
      ++ lib.optional (builtins.isString cfg.server.cors) "--enable-cors-header=${cfg.server.cors}"
      ++ lib.optional (!cfg.outputCache.enable) "--cache-none"
      ++ lib.optional (cfg.outputCache.size != null) "--cache-lru=${toString cfg.outputCache.size}"
      ++ lib.optional (!modelsInDataDir) "--extra-model-paths-config=${extraModelPaths}"
    );

    users.users.comfyui = {
      isSystemUser = true;
      group = "comfyui";
      home = cfg.dataDir;
    };
    users.groups.comfyui = { };

    systemd.tmpfiles.settings."10-comfyui" = mkIf (!isDefaultDataDir) {
      ${cfg.dataDir}.d = {
        user = "comfyui";
        group = "comfyui";
        mode = "0750";
      };
    };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.server.port ];

    systemd.services.comfyui = {
      description = "ComfyUI (comfyx, ${cfg.backend.type} backend)";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];

      environment = {
        COMFYUI_DATA_DIR = cfg.dataDir; # the launcher's: ComfyUI's base and user directories
        COMFYX_CACHE_DIR = cacheDir; # comfyx's --cache-dir: compile caches (inductor, Triton, XLA), calibrated fp8 scales
        HF_HOME = "${cacheDir}/huggingface";
        XDG_CACHE_HOME = cacheDir;
        HOME = cfg.dataDir;
      }
      // common.deviceEnvironment cfg.backend
      // cfg.environment;

      preStart = ''
        set -eu
        # The launcher makes the rest of ComfyUI's directories; these are filled here, before it runs.
        mkdir -p ${lib.escapeShellArgs [ "${cfg.dataDir}/custom_nodes" cfg.models.path ]}

        # Links into the store left by an earlier configuration go; declared ones come back below.
        # Folders this user cannot read (another service's, in a shared models directory) are
        # skipped rather than failing the start.
        find ${lib.escapeShellArg cfg.models.path} -type l -lname '${builtins.storeDir}/*' -delete || true
      ''
      + lib.concatMapStrings (
        m:
        if cfg.models.autoDownload then
          ''
            mkdir -p ${lib.escapeShellArg "${cfg.models.path}/${m.type}"}
            ln -sfn ${fetched m} ${lib.escapeShellArg (modelFile m)}
          ''
        else
          ''
            [ -e ${lib.escapeShellArg (modelFile m)} ] || missing="''${missing:-}${modelFile m} "
          ''
      ) cfg.models.files
      + lib.optionalString (!cfg.models.autoDownload && cfg.models.files != [ ]) ''
        if [ -n "''${missing:-}" ]; then
          echo "models.autoDownload is off and these model files are missing: $missing" >&2
          exit 1
        fi
      ''
      + ''
        for d in ${lib.escapeShellArg cfg.dataDir}/custom_nodes/*/; do
          [ -f "$d.comfyx-source" ] || continue
          case " ${toString nodeNames} " in *" $(basename "$d") "*) ;; *) rm -rf "$d" ;; esac
        done
      ''
      + lib.concatMapStrings syncNode nodes;

      serviceConfig = {
        ExecStart = common.launcherCommand package cfg cfg.extraArgs;
        User = "comfyui";
        Group = "comfyui";
        SupplementaryGroups = supplementaryGroups.${cfg.backend.type};
        WorkingDirectory = cfg.dataDir;
        Restart = "on-failure";
        RestartSec = "5s";
        # comfyx waits up to --shutdown-timeout for the running prompt on SIGTERM, then exits itself.
        TimeoutStopSec = lib.mkIf cfg.hardening.enable (
          "${toString (builtins.ceil cfg.hardening.shutdownTimeout + 15)}s"
        );

        StateDirectory = mkIf isDefaultDataDir "comfyui";
        StateDirectoryMode = "0750";
        CacheDirectory = "comfyui"; # Triton, inductor and XLA compile caches
        CacheDirectoryMode = "0750";
        # Bind mounts rather than ReadWritePaths, so that ProtectHome's tmpfs cannot hide them.
        BindPaths =
          lib.optional (!isDefaultDataDir) cfg.dataDir ++ lib.optional (!modelsInDataDir) cfg.models.path;

        # Devices: none but the backend's accelerators.
        DevicePolicy = "closed";
        DeviceAllow = deviceAllow.${cfg.backend.type};
        PrivateDevices = cfg.backend.type == "cpu";

        # torch.compile, Triton and XLA generate machine code at run time: W+X memory is needed.
        MemoryDenyWriteExecute = false;
        # libtpu pins host memory for DMA.
        LimitMEMLOCK = mkIf (cfg.backend.type == "tpu") "infinity";

        NoNewPrivileges = true;
        CapabilityBoundingSet = [ "" ];
        AmbientCapabilities = [ "" ];
        ProtectSystem = "strict";
        ProtectHome = "tmpfs";
        PrivateTmp = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        ProcSubset = "all"; # torch and psutil read /proc/cpuinfo and /proc/meminfo
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        RemoveIPC = true;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ]
        ++ lib.optional (cfg.backend.type == "tpu") "AF_NETLINK"; # libtpu enumerates interfaces
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        UMask = "0027";
      };
    };
  };
}

# What the NixOS and the Home Manager module share: comfyx's settings as typed options, the flags they
# render to, the backend's devices, the launcher's command line, and how the package is completed
# with nodes and BMF.
#
# comfyx's settings come from ./settings.json, which `python -m comfyx.settings json` writes from the
# Python settings table (tests/nix/test_settings_table.py keeps the two equal): each setting with a
# Nix option becomes that option, typed by what the setting allows, with comfyx's default, and is
# rendered as its own flag (`bmf.workers = 4` -> `--bmf-workers 4`), only where it differs from the
# default. One name per setting: the option, the flag, and the variable COMFYX_<FLAG>.
{ lib }:
let
  inherit (lib) mkOption types;

  # The device prefix each backend accepts in `backend.device`.
  devicePrefix = {
    cuda = "cuda";
    ipex = "xpu";
    tpu = "tpu";
    cpu = "cpu";
  };
  backendOfPrefix = lib.mapAttrs' (b: p: lib.nameValuePair p b) devicePrefix;

  # "cuda:0,1" -> { prefix = "cuda"; ids = "0,1"; }; "tpu" -> { prefix = "tpu"; ids = null; }
  parseDevice =
    device:
    let
      parts = lib.splitString ":" device;
    in
    {
      prefix = builtins.head parts;
      ids = if builtins.length parts > 1 then builtins.elemAt parts 1 else null;
    };

  settingsTable = builtins.filter (s: s.nix != null) (builtins.fromJSON (builtins.readFile ./settings.json));
  pathOf = s: lib.splitString "." s.nix;

  # `backend.optimization`'s values before `engine` existed: they named the engine.
  legacyOptimizations = [
    "stock"
    "bmf"
  ];
  # Rendered even at their defaults: the package is built for them (BMF, the backend's torch), so a
  # change of comfyx's default must not change what the unit runs.
  alwaysRendered = [
    "--backend"
    "--engine"
  ];

  typeOf =
    s:
    {
      switch = types.bool;
      whole =
        if s ? multipleOf then
          types.addCheck (types.ints.between s.low s.high) (x: lib.mod x s.multipleOf == 0)
          // {
            description = s.allowed;
          }
        else
          types.ints.between s.low s.high;
      seconds = types.addCheck types.number (x: x >= s.low && x <= s.high) // {
        description = s.allowed;
      };
      choice = types.enum (
        s.choices ++ lib.optionals (s.flag == "--optimization") legacyOptimizations
      );
      size = types.strMatching s.pattern // {
        description = "string: ${s.allowed}";
      };
    }
    .${s.kind};

  # `backend.type` picks the package, so it takes the backends a package exists for (not `auto`)
  # and defaults to the CPU one; it is declared by the modules themselves.
  declaredByModules = [ "backend.type" ];

  settingOption =
    s:
    mkOption {
      type = if s.default == null then types.nullOr (typeOf s) else typeOf s;
      inherit (s) default;
      description =
        "${s.help}. comfyx's `${s.flag}` (environment variable `${s.env}`)"
        + lib.optionalString (s.flag == "--optimization") (
          "; `\"stock\"` and `\"bmf\"`, its values before `engine` existed, set `engine` and warn"
        )
        + ".";
    };

  # "--flag value", "--flag" or its off flag; nothing for a default (or a legacy value).
  flagsOf =
    s: value:
    let
      rendered =
        if s.kind == "switch" then
          [ (if value then s.flag else s.offFlag) ]
        else
          [
            s.flag
            (toString value)
          ];
    in
    lib.optionals (
      value != null
      && (value != s.default || builtins.elem s.flag alwaysRendered)
      && !(s.flag == "--optimization" && builtins.elem value legacyOptimizations)
    ) rendered;
in
rec {
  backends = builtins.attrNames devicePrefix;

  # ComfyUI's model folder names (folder_paths.py of v0.3.64), the valid `type`s of a model.
  modelFolders = [
    "audio_encoders"
    "checkpoints"
    "classifiers"
    "clip"
    "clip_vision"
    "configs"
    "controlnet"
    "diffusers"
    "diffusion_models"
    "embeddings"
    "gligen"
    "hypernetworks"
    "loras"
    "model_patches"
    "photomaker"
    "style_models"
    "text_encoders"
    "unet"
    "upscale_models"
    "vae"
    "vae_approx"
  ];

  # A module declaring every comfyx setting below `prefix` (e.g. [ "services" "comfyui" ]), with
  # the backend's type and devices, and the renamed options that keep working.
  settingsModule =
    prefix:
    { config, ... }:
    let
      cfg = lib.getAttrFromPath prefix config;
      opt = lib.concatStringsSep "." prefix;
    in
    {
      imports = [
        # `fast.enable` was `--fast`: now `backend.optimization = "performance"`.
        (lib.mkChangedOptionModule (prefix ++ [
          "fast"
          "enable"
        ]) (prefix ++ [
          "backend"
          "optimization"
        ]) (config: if lib.getAttrFromPath (prefix ++ [ "fast" "enable" ]) config then "performance" else "default"))
      ];

      options = lib.setAttrByPath prefix (
        lib.foldl' (acc: s: lib.recursiveUpdate acc (lib.setAttrByPath (pathOf s) (settingOption s))) {
          backend = {
            type = mkOption {
              type = types.enum backends;
              default = "cpu";
              description = ''
                Accelerator backend: `cuda` (NVIDIA, torch CUDA wheels), `ipex` (Intel GPUs, torch's XPU
                wheels), `tpu` (torch_xla + libtpu) or `cpu`. It selects the default package, comfyx's
                `--backend` (environment variable `COMFYX_BACKEND`; comfyx's own default, `auto`, is
                not a package) and the devices the service may open.

                `ipex` defaults to `comfyui-ipex`, which needs the GPU's Level Zero driver
                (`hardware.graphics.extraPackages = [ pkgs.intel-compute-runtime ]` on NixOS). For IPEX 2.8
                on a Xeon CPU instead, set `package = pkgs.comfyui-ipex-cpu` (torch 2.8 +
                intel-extension-for-pytorch 2.8); comfyx's `--backend ipex` runs either.
              '';
            };
            device = mkOption {
              type = types.strMatching "auto|(cuda|xpu|tpu|cpu)(:[0-9]+(,[0-9]+)*)?";
              default = "auto";
              example = "cuda:0,1";
              description = ''
                Devices to use, written `<kind>[:<index>,...]` with the kind matching `type`
                (`cuda:` for cuda, `xpu:` for ipex, `tpu:` for tpu, `cpu` for cpu). Indices become
                `CUDA_VISIBLE_DEVICES`, `ZE_AFFINITY_MASK` or `TPU_VISIBLE_CHIPS`; `"auto"` or a bare kind
                uses every device of that kind (for `ipex`: the Intel GPU if there is one, else the CPU
                through IPEX).
              '';
            };
          };
        } (builtins.filter (s: !builtins.elem s.nix declaredByModules) settingsTable)
      );

      config =
        let
          legacy = builtins.elem cfg.backend.optimization legacyOptimizations;
        in
        lib.mkIf (cfg.enable && legacy) (
          lib.mkMerge [
            {
              warnings = [
                ("${opt}.backend.optimization = \"${cfg.backend.optimization}\" chose the engine; it is now "
                  + "${opt}.engine = \"${cfg.backend.optimization}\" (backend.optimization = \"performance\" "
                  + "turns on the fast path).")
              ];
            }
            # The legacy value still chooses the engine, below anything the user sets.
            (lib.setAttrByPath prefix { engine = lib.mkDefault cfg.backend.optimization; })
          ]
        );
    };

  # comfyx's flags for the settings in `cfg`, in the settings table's order.
  settingsFlags =
    cfg: lib.concatMap (s: flagsOf s (lib.attrByPath (pathOf s) null cfg)) settingsTable;

  backendAssertions =
    opt: b:
    let
      d = parseDevice b.device;
      kind = backendOfPrefix.${d.prefix} or d.prefix;
    in
    lib.optional (b.device != "auto") {
      assertion = d.prefix == devicePrefix.${b.type};
      message =
        "${opt}.backend.device = \"${b.device}\" names ${kind} devices, but ${opt}.backend.type is "
        + "\"${b.type}\", which takes \"${devicePrefix.${b.type}}[:N,...]\" or \"auto\".";
    };

  # The environment that picks the devices (torch reads it, not comfyx).
  deviceEnvironment =
    b:
    let
      ids = if b.device == "auto" then null else (parseDevice b.device).ids;
      pick =
        {
          cuda = {
            CUDA_VISIBLE_DEVICES = ids;
            # Number devices like nvidia-smi does, so that indices name the same GPUs.
            CUDA_DEVICE_ORDER = "PCI_BUS_ID";
          };
          ipex.ZE_AFFINITY_MASK = ids;
          tpu.TPU_VISIBLE_CHIPS = ids;
          cpu = { };
        }
        .${b.type};
    in
    lib.optionalAttrs (ids != null) (lib.filterAttrs (_: v: v != null) pick);

  # What both modules run: the package's launcher (state under $COMFYUI_DATA_DIR), comfyx's flags,
  # then ComfyUI's after `--`.
  launcherCommand =
    package: cfg: comfyuiArgs:
    lib.escapeShellArgs ([ "${package}/bin/comfyui" ] ++ settingsFlags cfg ++ [ "--" ] ++ comfyuiArgs);

  # The package with the nodes' Python dependencies and, for the BMF engine, BMF added.
  # A package that cannot be overridden is used as it is.
  finalPackage =
    package: cfg: nodes:
    if package ? override then
      package.override {
        withBmf = cfg.engine == "bmf";
        extraPythonPackages = ps: lib.concatMap (n: (n.pythonDeps or (_: [ ])) ps) nodes;
      }
    else
      package;

  # The overlay's packages: from `pkgs` when the user applied the overlay, else added here.
  comfyxPackages = pkgs: if pkgs ? comfyui-cpu then pkgs else pkgs.extend (import ../../overlays/default.nix);
}

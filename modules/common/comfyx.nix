# What the NixOS and the Home Manager module share: the backend options, their checks, the
# environment and flags they render to, and how the package is completed with nodes and BMF.
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

  backendModule = {
    options = {
      type = mkOption {
        type = types.enum backends;
        default = "cpu";
        description = ''
          Accelerator backend: `cuda` (NVIDIA, torch CUDA wheels), `ipex` (Intel GPUs, torch's XPU
          wheels), `tpu` (torch_xla + libtpu) or `cpu`. It selects the default package, comfyx's
          `--backend`, and the devices the service may open.

          `ipex` defaults to `comfyui-ipex`, which needs the GPU's Level Zero driver
          (`hardware.graphics.extraPackages = [ pkgs.intel-compute-runtime ]` on NixOS). For IPEX 2.8
          on a Xeon CPU instead, set `package = pkgs.comfyui-ipex-cpu` (torch 2.8 +
          intel-extension-for-pytorch 2.8); comfyx's `--backend ipex` runs either.
        '';
      };
      device = mkOption {
        type = types.nullOr (types.strMatching "(cuda|xpu|tpu|cpu)(:[0-9]+(,[0-9]+)*)?");
        default = null;
        example = "cuda:0,1";
        description = ''
          Devices to use, written `<kind>[:<index>,...]` with the kind matching `type`
          (`cuda:` for cuda, `xpu:` for ipex, `tpu:` for tpu, `cpu` for cpu). Indices become
          `CUDA_VISIBLE_DEVICES`, `ZE_AFFINITY_MASK` or `TPU_VISIBLE_CHIPS`; `null` or a bare kind
          uses every device of that kind.
        '';
      };
      optimization = mkOption {
        type = types.enum [
          "stock"
          "bmf"
        ];
        default = "stock";
        description = ''
          Prompt executor comfyx runs (`comfyx serve --engine`): ComfyUI's own (`stock`) or the
          BMF engine (`bmf`), which adds the BMF runtime built from source to the package.
        '';
      };
    };
  };

  # comfyx's fast path (`comfyx serve --fast` and its parts); each option is the flag of its name.
  fastModule = {
    options = {
      enable = lib.mkEnableOption ''
        comfyx's fast path (`--fast`): every bf16/fp16 diffusion model loaded gets fp8 Linear layers
        where fp8 GEMMs run (CUDA sm_89+), runs through comfyx's compile with persistent caches, and
        fp8 checkpoints and Flux RoPE use comfyx's kernels. The options below override its parts
      '';
      kernels = mkOption {
        type = types.bool;
        default = true;
        description = "fp8 checkpoints and Flux RoPE on comfyx's kernels (`--kernels` / `--no-kernels`).";
      };
      quantize = mkOption {
        type = types.nullOr (
          types.enum [
            "none"
            "fp8"
          ]
        );
        default = null;
        description = "Quantize every bf16/fp16 diffusion model loaded (`--quantize`); null: `fp8` with `enable`, else `none`.";
      };
      quantizeLayers = mkOption {
        type = types.enum [
          "blocks"
          "all"
        ];
        default = "blocks";
        description = "Which Linear layers `quantize` takes: the transformer blocks', or all (`--quantize-layers`).";
      };
      compile = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "Compile every diffusion model loaded (`--compile` / `--no-compile`); null: as `enable` says.";
      };
    };
  };

  # The fast path's flags, only those that differ from comfyx's defaults.
  fastFlags =
    f:
    lib.optional f.enable "--fast"
    ++ lib.optional (!f.kernels) "--no-kernels"
    ++ lib.optionals (f.quantize != null) [
      "--quantize"
      f.quantize
    ]
    ++ lib.optionals (f.quantizeLayers != "blocks") [
      "--quantize-layers"
      f.quantizeLayers
    ]
    ++ lib.optional (f.compile != null) (if f.compile then "--compile" else "--no-compile");

  backendAssertions =
    opt: b:
    let
      d = parseDevice b.device;
      kind = backendOfPrefix.${d.prefix} or d.prefix;
    in
    lib.optional (b.device != null) {
      assertion = d.prefix == devicePrefix.${b.type};
      message =
        "${opt}.backend.device = \"${b.device}\" names ${kind} devices, but ${opt}.backend.type is "
        + "\"${b.type}\", which takes \"${devicePrefix.${b.type}}[:N,...]\".";
    };

  # Environment that picks the devices and makes comfyx's choice the default.
  backendEnvironment =
    b:
    let
      ids = if b.device == null then null else (parseDevice b.device).ids;
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
    {
      COMFYX_BACKEND = b.type;
    }
    // lib.optionalAttrs (ids != null) (lib.filterAttrs (_: v: v != null) pick);

  # comfyx's own `serve` flags; ComfyUI's follow after `--`.
  comfyxFlags = b: [
    "--backend"
    b.type
    "--engine"
    b.optimization
  ];

  # The package with the nodes' Python dependencies and, for the BMF engine, BMF added.
  # A package that cannot be overridden is used as it is.
  finalPackage =
    package: b: nodes:
    if package ? override then
      package.override {
        withBmf = b.optimization == "bmf";
        extraPythonPackages = ps: lib.concatMap (n: (n.pythonDeps or (_: [ ])) ps) nodes;
      }
    else
      package;

  # The overlay's packages: from `pkgs` when the user applied the overlay, else added here.
  comfyxPackages = pkgs: if pkgs ? comfyui-cpu then pkgs else pkgs.extend (import ../../overlays/default.nix);
}

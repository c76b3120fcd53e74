#!/usr/bin/env bash
# Stages what the device calls carry (git-ignored through .git/info/exclude; the device machine
# is bare and cannot reach a package index):
#   .carry/comfyui  ComfyUI v0.3.64 from $COMFYUI_PATH, less the tokenizers no benchmark model
#                   uses and its tests (10 MB: a call carries at most 64 MiB)
#   .carry/whl      cp312 wheels of what ComfyUI imports and the device image lacks
#   .whl/ck_site    comfy-kitchen 0.2.40's CUDA package unpacked, the kernel tests' reference
#                   (its ROCm library left out)
# Then, from the repository root:
#   end to end: carry [".carry/comfyui", ".carry/whl"],  bash tools/gpu-bench.sh MODEL [options]
#   kernels:    carry [".whl"],  bash python/comfyx-kernels/tools/gpu_check.sh [steps]
# (both build the kernel wheel on the device unless .carry/kernel-wheel or .whl holds one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${COMFYUI_PATH:?set COMFYUI_PATH to a ComfyUI v0.3.64 checkout}"
grep -qx '.carry/' .git/info/exclude 2>/dev/null || printf '.carry/\n' >> .git/info/exclude
grep -qx '.whl/' .git/info/exclude 2>/dev/null || printf '.whl/\n' >> .git/info/exclude

rm -rf .carry/comfyui && mkdir -p .carry/comfyui
tokenizers=(llama_tokenizer qwen25_tokenizer hydit_clip_tokenizer ace_lyrics_tokenizer t5_pile_tokenizer byt5_tokenizer)
tar -C "$COMFYUI_PATH" -c --exclude=.git --exclude=./tests --exclude=./tests-unit \
  "${tokenizers[@]/#/--exclude=comfy/text_encoders/}" . | tar -x -C .carry/comfyui

download() {  # cp312 manylinux wheels, without their dependencies (each is named)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$@"
}
# kornia (7 MB) is left out: only an optional ComfyUI node imports it, and av alone is 35 MB.
mkdir -p .carry/whl
download -d .carry/whl torchsde trampoline alembic Mako SQLAlchemy greenlet "av>=14.2.0" spandrel \
  "pydantic~=2.0" pydantic-core "pydantic-settings~=2.0" python-dotenv typing-inspection \
  annotated-types platformdirs websocket-client py-spy

scratch=$(mktemp -d)
download -d "$scratch" comfy-kitchen==0.2.40
rm -rf .whl/ck_site && mkdir -p .whl/ck_site
python3 - "$scratch"/comfy_kitchen-*.whl .whl/ck_site <<'PY'
import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if "/hip/" not in n])
PY
rm -rf "$scratch"
du -sh .carry/comfyui .carry/whl .whl/ck_site

#!/usr/bin/env bash
# One device run of `comfyx bench` on a GPU machine (H100/H200, torch+CUDA, nvcc, no network).
#
#   tools/gpu-bench.sh MODEL [comfyx bench options...]
#   tools/gpu-bench.sh compile [bench/compile.py options...]   (its stages, e.g. --stages sdxl-fp8-graphs1)
#
# Expects, carried with the call (git-ignored, see .git/info/exclude; tools/device-carry.sh stages
# the first two):
#   .carry/comfyui/  a ComfyUI v0.3.64 tree
#   .carry/whl/      cp312 wheels of what ComfyUI needs and the image lacks (torchsde, av,
#                    pydantic(-settings/-core), spandrel, platformdirs, websocket-client, ...)
#   .carry/kernel-wheel/  optional: a cp312 comfyx_kernels wheel built with nvcc (its Python
#                    sources are replaced by this tree's); without it the CUDA extension is
#                    built here for the device's architecture (about a minute)
#   .carry/bmf/      optional: BMF's cp312 wheel (BabitMF) and, in lib/, the FFmpeg 4 shared
#                    libraries it links (libavcodec.so.58 ...; the device has none), so that
#                    comfyx serve runs its BMF engine there; without it, comfyx runs the stock one
# Generates MODEL's
# random-weight models, runs the benchmark and leaves in $OUT: the bench's JSON and PNG,
# bench-MODEL.log, setup-MODEL.log, diag-MODEL.txt (the servers' lines about compiling,
# recompiles, graph breaks, comfyx and errors), tests-gpu.log (comfyx tests that need CUDA) and
# servers-MODEL.tgz (the servers' logs). BUDGET (seconds, default 570) bounds the whole run; the
# results so far are kept when it runs out.
set -uo pipefail
MODEL=${1:?usage: tools/gpu-bench.sh MODEL [comfyx bench options]}
shift
OUT=${OUT:-/tmp/out}
WORK=/tmp/comfyx-bench-work-$MODEL
SITE=/tmp/comfyx-site
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
DEADLINE=$((SECONDS + ${BUDGET:-570}))
collect() {
  grep -H -E "ecompil|raph break|comfyx|Traceback|Error|rror:|fp8|dtype" "$WORK"/*.log 2>/dev/null \
    | grep -v "Writing AOTAutograd cache entry" | cut -c1-400 | head -n 3000 > "$OUT/diag-$MODEL.txt"
  # the servers' whole logs in one file: the device brings back only a few files per call
  tar czf "$OUT/servers-$MODEL.tgz" -C "$WORK" $(cd "$WORK" && ls *.log 2>/dev/null) 2>/dev/null
}
trap collect EXIT

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .carry/whl/*.whl || exit 1
  bash python/comfyx-kernels/tools/device_wheel.sh .carry/kernel-wheel || exit 1
  python3 -m pip install -q --no-index --no-deps --target "$SITE" .carry/kernel-wheel/comfyx_kernels-*.whl || exit 1
  cp -r python/comfyx-kernels/src/comfyx_kernels/. "$SITE/comfyx_kernels/"  # this tree's Python sources
  if ls .carry/bmf/BabitMF-*-cp312-*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --target "$SITE" .carry/bmf/BabitMF-*-cp312-*.whl || exit 1
  fi
} > "$OUT/setup-$MODEL.log" 2>&1 || { tail -30 "$OUT/setup-$MODEL.log"; exit 1; }
export PYTHONPATH=$SITE:$PWD/python/comfyx PATH=$SITE/bin:$PATH  # bin: py-spy, for --profile-warm-restart
[ -d .carry/bmf/lib ] && export LD_LIBRARY_PATH=$PWD/.carry/bmf/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
python3 -c "import bmf; print('bmf', bmf.__file__)" >> "$OUT/setup-$MODEL.log" 2>&1 \
  || echo "BMF does not import here: comfyx runs its stock engine" | tee -a "$OUT/setup-$MODEL.log"
python3 -c "import comfyx_kernels as k; print([(b.name, b.available, b.reason) for b in k.list_backends()])" \
  | tee -a "$OUT/setup-$MODEL.log"

# comfyx's tests that need a GPU (page-locked quantized layers), before the benchmark
PYTHONPATH=$PYTHONPATH:$PWD/.carry/comfyui timeout 120 python3 -m pytest -q -p no:cacheprovider -o addopts="" \
  python/comfyx/comfyx/kernels/tests/test_pinned.py > "$OUT/tests-gpu.log" 2>&1
tail -3 "$OUT/tests-gpu.log"

left=$((DEADLINE - SECONDS))
if [ "$MODEL" = compile ]; then  # bench/compile.py's stages (one model call at a time, no server)
  python3 bench/compile.py --comfyui .carry/comfyui --out "$OUT" --work "$WORK" --budget-s "$((left - 10))" "$@" \
    2>&1 | tee "$OUT/bench-compile.log" | tail -40
  exit 0
fi
timeout "$left" python3 -m comfyx bench --comfyui .carry/comfyui --models /tmp/comfyx-models --model "$MODEL" \
  --out "$OUT" --work "$WORK" "$@" 2>&1 | tee "$OUT/bench-$MODEL.log" | grep -E "comfyx bench|error|Error|generat" | tail -40
tail -12 "$OUT/bench-$MODEL.log"

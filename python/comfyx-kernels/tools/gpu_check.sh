#!/usr/bin/env bash
# One device run: install the carried wheels, then the steps named as arguments (default:
# tests bench memcheck): GPU tests, fp8/RoPE benchmark (bench), NVFP4/MXFP8 benchmark (fp4,
# bench/kernels_fp4.py; FLUX_DEPTH=double,single blocks of its Flux step, default 19,38),
# the CUDA NVFP4 quantize's variants (variants, bench/nvfp4_quantize_cuda_variants.cu),
# compute-sanitizer memcheck. TEST_FILES narrows the tests (paths under kernel_tests/); FP4_SECTIONS picks bench/kernels_fp4.py's sections (default all).
# Expects comfy-kitchen's CUDA package unpacked under .whl/ck_site (tools/device-carry.sh), and takes a cp312 comfyx_kernels
# wheel from .whl/ (built here, tools/device_wheel.sh, when none is carried). Results go to $OUT (or /tmp/out).
# Time limits (seconds): TEST_TIMEOUT, BENCH_TIMEOUT, FP4_TIMEOUT, and BUDGET for the whole script, from
# which memcheck gets what is left (it is skipped, saying so, when under 30 s remain).
set -uo pipefail
DEADLINE=$((SECONDS + ${BUDGET:-600}))
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
bash python/comfyx-kernels/tools/device_wheel.sh .whl || exit 1
rm -rf /tmp/site /tmp/kernel_tests && python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/comfyx_kernels-*.whl || exit 1
# Python sources from this tree (newer than the wheel's); the wheel supplies the built extension.
cp -r python/comfyx-kernels/src/comfyx_kernels/. /tmp/site/comfyx_kernels/
export PYTHONPATH=/tmp/site:$PWD/.whl/ck_site
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import comfyx_kernels as c; print(c.list_backends())"
# Tests from a copy outside the source tree, so they import the installed package.
cp -r python/comfyx-kernels/src/comfyx_kernels/tests /tmp/kernel_tests
STEPS=" ${*:-tests bench memcheck} "
if [[ $STEPS == *" tests "* ]]; then
  (cd /tmp && timeout ${TEST_TIMEOUT:-200} python3 -m pytest -q -n 8 -p no:cacheprovider \
    --import-mode=importlib -o addopts="" ${TEST_FILES:-kernel_tests} > "$OUT/pytest.txt" 2>&1)
  tail -15 "$OUT/pytest.txt"
fi
if [[ $STEPS == *" bench "* ]]; then
  timeout ${BENCH_TIMEOUT:-220} python3 bench/kernels.py --out "$OUT" > "$OUT/bench.txt" 2>&1
  grep -E "MET|MISS|copy:|Error|error" "$OUT/bench.txt" | tail -15
fi
if [[ $STEPS == *" fp4 "* ]]; then
  timeout ${FP4_TIMEOUT:-330} python3 bench/kernels_fp4.py --out "$OUT" --flux-depth "${FLUX_DEPTH:-19,38}" \
    ${FP4_SECTIONS:+--sections "$FP4_SECTIONS"} \
    > "$OUT/bench_fp4.txt" 2>&1
  echo "kernels_fp4 exit $?"
  grep -E "copy:|Error|error" "$OUT/bench_fp4.txt" | tail -8
fi
if [[ $STEPS == *" variants "* ]]; then
  arch=$(python3 -c "import torch; print('{}{}'.format(*torch.cuda.get_device_capability()))")
  [ "$arch" = 90 ] && arch=90a
  nvcc -std=c++20 --expt-relaxed-constexpr -O3 -arch=sm_$arch -I python/comfyx-kernels/csrc \
    bench/nvfp4_quantize_cuda_variants.cu -o /tmp/nvfp4_variants \
    && timeout 120 /tmp/nvfp4_variants > "$OUT/nvfp4_quantize_cuda_variants.json"
  cat "$OUT/nvfp4_quantize_cuda_variants.json"
fi
LEFT=$((DEADLINE - SECONDS - 5))
if [[ $STEPS == *" memcheck "* && $LEFT -lt 30 ]]; then
  echo "memcheck skipped: ${LEFT}s left of the budget" | tee "$OUT/memcheck.txt"
elif [[ $STEPS == *" memcheck "* ]]; then
  (cd /tmp && timeout $((LEFT < ${MEMCHECK_TIMEOUT:-120} ? LEFT : ${MEMCHECK_TIMEOUT:-120})) compute-sanitizer --tool memcheck --error-exitcode 3 \
    python3 -m kernel_tests.cuda_memcheck_cases > "$OUT/memcheck.txt" 2>&1
   echo "memcheck exit $?" >> "$OUT/memcheck.txt")
  grep -E "FAIL|ERROR SUMMARY|exit" "$OUT/memcheck.txt" | tail -5
fi
# Last: the short table (test counts, targets, Flux steps).
[[ -f "$OUT/pytest.txt" ]] && tail -1 "$OUT/pytest.txt"
[[ -f "$OUT/bench_fp4.txt" ]] && grep -E "^(MET|MISS|flux) " "$OUT/bench_fp4.txt"
exit 0

#!/usr/bin/env bash
# One device run: install the carried wheels, GPU tests, compute-sanitizer memcheck, benchmark.
# Expects .whl/ with a cp312 comfyx_kernels wheel (built with nvcc) and comfy-kitchen's CUDA
# package unpacked under .whl/ck_site. Results go to $OUT (or /tmp/out).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/comfyx_kernels-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.whl/ck_site
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import comfyx_kernels as c; print(c.list_backends())"
# Tests from a copy outside the source tree, so they import the installed package.
cp -r python/comfyx-kernels/src/comfyx_kernels/tests /tmp/kernel_tests
(cd /tmp && timeout 300 python3 -m pytest -q -x -p no:cacheprovider --import-mode=importlib \
  -o addopts="" kernel_tests 2>&1 | tail -25 | tee "$OUT/pytest.txt")
(cd /tmp && timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 \
  python3 -m kernel_tests.cuda_memcheck_cases > "$OUT/memcheck.txt" 2>&1; echo "memcheck exit $?" >> "$OUT/memcheck.txt")
tail -5 "$OUT/memcheck.txt"
timeout 400 python3 bench/kernels.py --out "$OUT" 2>&1 | tail -20

#!/usr/bin/env bash
# device_wheel.sh DIR: makes sure DIR holds a cp312 comfyx_kernels wheel with the CUDA extension.
# A wheel carried there is kept; otherwise it is built here, for this device's architecture only
# (about a minute, a quarter of the full build), with the machine's own scikit-build-core and nanobind.
set -euo pipefail
dir=${1:?usage: device_wheel.sh DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ls "$dir"/comfyx_kernels-*-cp312-*.whl >/dev/null 2>&1 && exit 0
arch=$(python3 -c "import torch; print('{}{}'.format(*torch.cuda.get_device_capability()))")
[ "$arch" = 90 ] && arch=90a
SKBUILD_CMAKE_DEFINE="CMAKE_CUDA_ARCHITECTURES=${arch}-real" python3 -m pip wheel -q --no-build-isolation \
  --no-deps -w "$dir" "$root"

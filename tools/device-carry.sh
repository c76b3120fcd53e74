#!/usr/bin/env bash
# Stages what the device calls carry (git-ignored through .git/info/exclude; the device machine
# is bare and cannot reach a package index):
#   .carry/comfyui  ComfyUI v0.3.64 from $COMFYUI_PATH, less the tokenizers no benchmark model
#                   uses and its tests (10 MB: a call carries at most 64 MiB)
#   .carry/whl      cp312 wheels of what ComfyUI imports and the device image lacks
#   .whl/ck_site    comfy-kitchen 0.2.40's CUDA package unpacked, the kernel tests' reference
#                   (its ROCm library left out)
#   .carry/bmf      only with STAGE_BMF=1 (everything) or STAGE_BMF=only (just this): BMF's cp312
#                   wheel (BabitMF 0.2.0) less what `import bmf` and Python modules never load,
#                   and in lib/ the FFmpeg 4.3 libraries its _bmf links (libavcodec.so.58 ...),
#                   built with no codecs at all: the device has no FFmpeg and BMF needs only their
#                   symbols (about 4 MB in all; needs curl, gcc, make, strip here)
# Then, from the repository root:
#   end to end: carry [".carry/comfyui", ".carry/whl"],  bash tools/gpu-bench.sh MODEL [options]
#   kernels:    carry [".whl"],  bash python/comfyx-kernels/tools/gpu_check.sh [steps]
#   BMF engine: add ".carry/bmf" to the end-to-end carry (gpu-bench.sh installs it if present)
# (both build the kernel wheel on the device unless .carry/kernel-wheel or .whl holds one).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
grep -qx '.carry/' .git/info/exclude 2>/dev/null || printf '.carry/\n' >> .git/info/exclude
grep -qx '.whl/' .git/info/exclude 2>/dev/null || printf '.whl/\n' >> .git/info/exclude

# .carry/bmf (see above). BMF_PYTHONS picks the wheels' Pythons (3.11 too, to check it here).
stage_bmf() {
  local scratch ff=ffmpeg_4.3.7.orig.tar.xz py lib so
  scratch=$(mktemp -d /tmp/ffbuild.XXXXXX)
  # FFmpeg 4.3 (the sonames BMF 0.2.0 was built against) from Debian bullseye's pool, pinned
  curl -fsSL -o "$scratch/$ff" "http://deb.debian.org/debian/pool/main/f/ffmpeg/$ff"
  echo "177d074943251bec33e1f9bc5979378ff5771882482ba9b3aee2cb18dd400554  $scratch/$ff" | sha256sum -c --quiet
  tar -xJf "$scratch/$ff" -C "$scratch"
  # --disable-everything: no codec, format or filter, only the API _bmf links (its 136
  # versioned symbols LIBAVCODEC_58 ... all exist without them); no asm, so nasm is not needed
  (cd "$scratch"/ffmpeg-4.3.7 && ./configure --prefix="$scratch/inst" --enable-shared --disable-static \
    --disable-programs --disable-doc --disable-everything --disable-autodetect --disable-network \
    --disable-postproc --disable-asm --disable-debug --enable-small --disable-swscale-alpha \
    --disable-pixelutils --disable-faan --disable-iconv && make -j"$(nproc)" && make install) \
    > "$scratch/build.log" 2>&1 || { tail -30 "$scratch/build.log"; return 1; }
  rm -rf .carry/bmf && mkdir -p .carry/bmf/lib
  for lib in "$scratch"/inst/lib/lib*.so.*.*.*; do  # plain files named by soname, no links
    so=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    strip --strip-unneeded -o ".carry/bmf/lib/$so" "$lib"
  done
  for py in ${BMF_PYTHONS:-3.12}; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
      --platform manylinux_2_28_x86_64 -d "$scratch/whl" babitmf==0.2.0
  done
  # The wheels less bin/, include/, static libraries, test modules and the duplicate copies of
  # symlinked libraries (lib keeps the names the loader asks for: NEEDED sonames, the
  # unversioned libbuiltin_modules/libbmf_py_loader), shared libraries stripped, RECORD redone
  python3 - "$scratch"/whl/*.whl .carry/bmf <<'PY'
import base64, hashlib, os, re, subprocess, sys, tempfile, zipfile
drop = re.compile(r"bmf/(bin|include|cpp_modules|python_modules)/|bmf/lib/(.*\.a|libbmf_go_loader\.so"
                  r"|lib(hmp|engine|bmf_module_sdk)\.so(\.\d+\.\d+\.\d+)?|libbuiltin_modules\.so\.[\d.]+)$")
for src in sys.argv[1:-1]:
    zin = zipfile.ZipFile(src)
    record = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
    rows = []
    with zipfile.ZipFile(os.path.join(sys.argv[-1], os.path.basename(src)), "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename == record or drop.match(info.filename):
                continue
            data = zin.read(info)
            if data[:4] == b"\x7fELF":
                with tempfile.NamedTemporaryFile() as f:
                    f.write(data)
                    f.flush()
                    subprocess.run(["strip", "--strip-unneeded", f.name], check=True)
                    data = open(f.name, "rb").read()
            zout.writestr(info, data, zipfile.ZIP_DEFLATED, 9)
            if not info.is_dir():
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                rows.append(f"{info.filename},sha256={digest},{len(data)}")
        rows.append(f"{record},,")
        zout.writestr(zin.getinfo(record), "\n".join(rows) + "\n", zipfile.ZIP_DEFLATED, 9)
PY
  rm -rf "$scratch"
  du -sbc .carry/bmf/*  # bytes
}
if [ "${STAGE_BMF:-}" = only ]; then stage_bmf; exit 0; fi
: "${COMFYUI_PATH:?set COMFYUI_PATH to a ComfyUI v0.3.64 checkout}"

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
if [ "${STAGE_BMF:-}" = 1 ]; then stage_bmf; fi

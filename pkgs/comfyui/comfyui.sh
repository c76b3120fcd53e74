#!@runtimeShell@
# ComfyUI from the Nix store, started through `comfyx serve`, with all runtime state outside the
# store: models, custom nodes, inputs, outputs, user data and the database live under
# $COMFYUI_DATA_DIR (default $XDG_DATA_HOME/comfyui), compile caches (Triton, inductor, XLA)
# under $COMFYX_CACHE_DIR (default $XDG_CACHE_HOME/comfyx).
# Arguments are ComfyUI's (main.py) flags; they come after ours, so a repeated flag wins. comfyx's
# own serve flags may come first, ended by `--`: `comfyui --fast -- --port 9000`.
set -eu
ours=()
if [[ " $* " == *" -- "* ]]; then
  while [ "$1" != "--" ]; do ours+=("$1"); shift; done
  shift
fi
data=${COMFYUI_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/comfyui}
cache=${COMFYX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/comfyx}
mkdir -p "$data/user" "$data/models" "$data/custom_nodes" "$data/input" "$data/output" "$data/temp" "$cache"
export COMFYX_CACHE_DIR="$cache"
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-$cache/triton}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$cache/inductor}"
# The engine is BMF's only where the package carries BMF (withBmf), so that a package without it
# does not warn at every start; COMFYX_ENGINE chooses another.
exec @comfyx@ serve --comfyui @comfyui@ --backend "${COMFYX_BACKEND:-@backend@}" \
  --engine "${COMFYX_ENGINE:-@engine@}" ${ours[@]+"${ours[@]}"} -- \
  --base-directory "$data" --user-directory "$data/user" \
  --database-url "sqlite:///$data/user/comfyui.db" "$@"

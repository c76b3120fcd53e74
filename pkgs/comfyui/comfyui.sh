#!@runtimeShell@
# ComfyUI from the Nix store, started through `comfyx serve`, with all runtime state outside the
# store: models, custom nodes, inputs, outputs, user data and the database live under
# $COMFYUI_DATA_DIR (default $XDG_DATA_HOME/comfyui); comfyx keeps its caches (Triton, inductor,
# XLA) in its cache directory ($COMFYX_CACHE_DIR, default $XDG_CACHE_HOME/comfyx).
# Arguments are ComfyUI's (main.py) flags; they come after ours, so a repeated flag wins. comfyx's
# own serve flags may come first, ended by `--`: `comfyui --fast -- --port 9000`. The NixOS and
# Home Manager modules run this script too, with their settings as comfyx's flags.
set -eu
ours=()
if [[ " $* " == *" -- "* ]]; then
  while [ "$1" != "--" ]; do ours+=("$1"); shift; done
  shift
fi
data=${COMFYUI_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/comfyui}
mkdir -p "$data/user" "$data/models" "$data/custom_nodes" "$data/input" "$data/output" "$data/temp"
# The package's backend is comfyx's default here; --backend and $COMFYX_BACKEND choose another.
export COMFYX_BACKEND="${COMFYX_BACKEND:-@backend@}"
exec @comfyx@ serve --comfyui @comfyui@ ${ours[@]+"${ours[@]}"} -- \
  --base-directory "$data" --user-directory "$data/user" \
  --database-url "sqlite:///$data/user/comfyui.db" "$@"

"""comfyx: run ComfyUI faster on NVIDIA, Intel, TPU and CPU hardware.

Subpackages, one per concern:
  cli       the ``comfyx`` command (serve, run, doctor, comfyui install)
  comfyui   finding a ComfyUI checkout, import hooks, launching its ``main.py``
  engine    prompt executors (stock, BMF)
  hardening what requests, clients and signals can do to `comfyx serve` (limits, history, shutdown)
  backends  accelerator detection and selection
  compile   torch.compile nodes and caches
  nodes     comfyx's ComfyUI nodes
  testing   pytest fixtures that run real ComfyUI
"""

__version__ = "0.1.0"

#: The ComfyUI release comfyx is built and tested against.
PINNED_COMFYUI_VERSION = "0.3.64"
PINNED_COMFYUI_COMMIT = "a125cd84b054a57729b5eecab930ca9408719832"
PINNED_COMFYUI_REPO = "https://github.com/Comfy-Org/ComfyUI"

"""comfyx's ComfyUI nodes, gathered from the concern that owns each one and bound to the process's settings.

ComfyUI makes node objects without arguments, so a node that needs a setting gets it as a class
attribute of a class made for this process (each concern's ``node_classes``). :func:`install`
adds them to ComfyUI's node mappings once ComfyUI imports its ``nodes`` module, before any
custom node loads; nothing is copied into the ComfyUI checkout (which may be read-only, e.g. in
the Nix store), and ComfyUI's frontend labels them as comfyx's (``RELATIVE_PYTHON_MODULE``).
"""

from __future__ import annotations

from types import ModuleType

from comfyx.backends.tpu import TPUBackend
from comfyx.backends.tpu import nodes as tpu_nodes
from comfyx.comfyui.hooks import after_import
from comfyx.compile import nodes as compile_nodes
from comfyx.kernels import nodes as kernel_nodes
from comfyx.nodes import system
from comfyx.settings.tree import Settings

PYTHON_MODULE = "custom_nodes.comfyx"  # what ComfyUI's /object_info reports as the nodes' package

NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    **system.NODE_DISPLAY_NAME_MAPPINGS, **tpu_nodes.NODE_DISPLAY_NAME_MAPPINGS,
    **compile_nodes.NODE_DISPLAY_NAME_MAPPINGS, **kernel_nodes.NODE_DISPLAY_NAME_MAPPINGS,
}


def node_classes(settings: Settings, tpu_backend: TPUBackend) -> dict[str, type]:
    """Every comfyx node, bound to ``settings`` and the process's TPU backend."""
    classes = {
        **system.node_classes(settings),
        **tpu_nodes.node_classes(tpu_backend),
        **compile_nodes.node_classes(settings.compile_caches),
        **kernel_nodes.node_classes(settings.fast.layer_options, settings.fast.fp8_activation_scale,
                                    settings.paths.calibration),
    }
    return {name: type(cls.__name__, (cls,), {"RELATIVE_PYTHON_MODULE": PYTHON_MODULE})
            for name, cls in classes.items()}


def install(settings: Settings, tpu_backend: TPUBackend) -> None:
    """Add comfyx's nodes to ComfyUI's once it imports ``nodes``."""
    def register(nodes: ModuleType) -> None:
        nodes.NODE_CLASS_MAPPINGS.update(node_classes(settings, tpu_backend))
        nodes.NODE_DISPLAY_NAME_MAPPINGS.update(NODE_DISPLAY_NAME_MAPPINGS)

    after_import("nodes", register)

"""What a backend can take, checked before it is called.

Each backend declares, per op, a `Constraints`: allowed devices and dtypes per tensor argument,
a minimum compute capability and extra shape rules. `Constraints.reject` returns the first
reason the call cannot run there (or None), so the registry can explain every refusal instead
of asserting inside the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

FLOAT_DTYPES = frozenset({torch.float32, torch.float16, torch.bfloat16})
FP8_DTYPES = frozenset({torch.float8_e4m3fn, torch.float8_e5m2})

# A shape rule gets the call's arguments and returns why it cannot run, or None.
ShapeRule = Callable[[Mapping[str, Any]], str | None]


_capabilities: dict[int, tuple[int, int]] = {}  # a dict, not functools.cache: Dynamo traces it


def device_capability(index: int) -> tuple[int, int]:
    if index not in _capabilities:
        _capabilities[index] = torch.cuda.get_device_capability(index)
    return _capabilities[index]


def _dtype_names(dtypes: frozenset[torch.dtype]) -> str:
    return ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))


@dataclass(frozen=True)
class Constraints:
    """Rules one backend's implementation of one op needs its arguments to meet."""

    devices: frozenset[str]
    dtypes: Mapping[str, frozenset[torch.dtype]] = field(default_factory=dict)
    min_capability: tuple[int, int] | None = None
    rules: tuple[ShapeRule, ...] = ()

    def reject(self, args: Mapping[str, Any]) -> str | None:
        tensors = {name: value for name, value in args.items() if isinstance(value, torch.Tensor)}
        for name, tensor in tensors.items():
            if tensor.device.type not in self.devices:
                return f"{name} is on {tensor.device}, needs {' or '.join(sorted(self.devices))}"
        for name, allowed in self.dtypes.items():
            value = args.get(name)
            dtype = value.dtype if isinstance(value, torch.Tensor) else value
            if dtype not in allowed:
                return f"{name} has dtype {dtype}, needs one of {_dtype_names(allowed)}"
        if self.min_capability is not None:
            for name, tensor in tensors.items():
                if tensor.device.type != "cuda":
                    continue
                capability = device_capability(tensor.device.index or 0)
                if capability < self.min_capability:
                    need = "sm_{}{}".format(*self.min_capability)
                    have = "sm_{}{}".format(*capability)
                    return f"{name} is on a {have} GPU, needs {need} or newer"
        for rule in self.rules:
            reason = rule(args)
            if reason is not None:
                return reason
        return None


def same_device(*names: str) -> ShapeRule:
    """All named tensors must live on one device (a kernel reads them all)."""

    def rule(args: Mapping[str, Any]) -> str | None:
        first = args[names[0]]
        for name in names[1:]:
            other = args[name]
            if other is not None and other.device != first.device:
                return f"{name} is on {other.device} but {names[0]} is on {first.device}"
        return None

    return rule


def scalar_tensor(name: str) -> ShapeRule:
    """A per-tensor scale: one element (any shape of one element)."""

    def rule(args: Mapping[str, Any]) -> str | None:
        if args[name].numel() != 1:
            return f"{name} must hold one element, has shape {tuple(args[name].shape)}"
        return None

    return rule

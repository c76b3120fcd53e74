"""How comfyx replaces ComfyUI's functions and classes in the process: recorded, checked, reversible.

The engine and the hardening each make their replacements through one :class:`Patches`. Each
replacement names the signature of what it replaces, as ComfyUI v0.3.64 has it: a ComfyUI whose
function takes other arguments stops start-up with a message saying what changed, rather than
being called wrongly at run time; :meth:`Patches.undo` puts every original back.
"""

from __future__ import annotations

import inspect
from typing import Any


class IncompatibleComfyUIError(RuntimeError):
    """A ComfyUI function comfyx replaces does not have the signature it was written for."""


class Patches:
    """Replacements made so far, in order; :meth:`undo` puts the originals back."""

    def __init__(self) -> None:
        self._originals: list[tuple[Any, str, Any]] = []

    def replace(self, owner: Any, name: str, replacement: Any, signature: str | None = None) -> Any:
        """Set ``owner.name`` to ``replacement`` and return what was there.

        ``signature``: the original's without annotations, e.g. ``"(self, server)"`` (for a
        class, its ``__init__``'s); a different one raises IncompatibleComfyUIError.
        """
        original = getattr(owner, name)
        if signature is not None:
            where = f"{getattr(owner, '__name__', type(owner).__name__)}.{name}"
            check_signature(original.__init__ if inspect.isclass(original) else original, signature, where)
        # as stored, so that undo puts back a classmethod or staticmethod as such
        self._originals.append((owner, name, inspect.getattr_static(owner, name)))
        setattr(owner, name, replacement)
        return original

    def undo(self) -> None:
        """Put every original back, the last replaced first."""
        while self._originals:
            owner, name, original = self._originals.pop()
            setattr(owner, name, original)


def check_signature(function: Any, expected: str, where: str) -> None:
    """Raise IncompatibleComfyUIError unless ``function``'s signature, without annotations, is ``expected``."""
    signature = inspect.signature(function)
    plain = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    actual = str(signature.replace(parameters=plain, return_annotation=inspect.Signature.empty))
    if actual != expected:
        raise IncompatibleComfyUIError(f"{where} takes {actual}; comfyx replaces it and was written for "
                                       f"{expected} (ComfyUI v0.3.64)")

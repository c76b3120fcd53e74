"""Output files are written under a temporary name and renamed into place, so none is ever half written.

ComfyUI's save nodes write straight to the final name: a process stopped mid-save (SIGTERM,
SIGKILL, a crash) leaves a truncated PNG that looks like any other output. Here PIL's
``Image.save`` to a path (SaveImage, PreviewImage, the animated WEBP/PNG savers, mask
uploads) and ComfyUI's ``comfy.utils.save_torch_file`` (latents, checkpoints, LoRAs) write
to a hidden ``.<name>.<random>.partial`` file in the same directory and rename it to the
final name once complete: the final name holds the whole file or nothing. Video and audio
savers (PyAV) write as ComfyUI does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

IMAGE_SAVE_SIGNATURE = "(self, fp, format=None, **params)"
SAVE_TORCH_FILE_SIGNATURE = "(sd, ckpt, metadata=None)"


@contextlib.contextmanager
def replaced_atomically(path: str) -> Iterator[str]:
    """Yields a temporary path next to ``path``; once the block is done, it becomes ``path``."""
    directory, name = os.path.split(path)
    partial = os.path.join(directory, f".{name[:200]}.{secrets.token_hex(4)}.partial")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def _is_plain_path(target: Any) -> bool:
    # A symlink is written through, as before: replacing it would replace the link itself.
    return isinstance(target, str | os.PathLike) and not os.path.islink(target)


def atomic_image_save(original: Callable[..., None], extensions: Callable[[], dict[str, str]]) -> Callable[..., None]:
    """PIL's ``Image.save``; ``extensions`` is PIL's ``registered_extensions`` (extension -> format)."""

    def save(self: Any, fp: Any, format: str | None = None, **params: Any) -> None:
        path = os.fspath(fp) if _is_plain_path(fp) else None
        # PIL takes the format from the name's extension, which the temporary name does not have
        format = format or (extensions().get(os.path.splitext(path)[1].lower()) if path else None)
        if path is None or format is None:
            original(self, fp, format, **params)  # not a file name, or one PIL refuses: as before
            return
        with replaced_atomically(path) as partial:
            original(self, partial, format, **params)

    return save


def atomic_save_torch_file(original: Callable[..., None]) -> Callable[..., None]:
    def save_torch_file(sd: Any, ckpt: Any, metadata: Any = None) -> None:
        if not _is_plain_path(ckpt):
            original(sd, ckpt, metadata=metadata)
            return
        with replaced_atomically(os.fspath(ckpt)) as partial:
            original(sd, partial, metadata=metadata)

    return save_torch_file

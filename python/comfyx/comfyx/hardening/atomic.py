"""Output files are written under a temporary name and renamed into place, so none is ever half written.

ComfyUI's save nodes write straight to the final name: a process stopped mid-save (SIGTERM,
SIGKILL, a crash) leaves a truncated PNG that looks like any other output. Here PIL's
``Image.save`` to a path (SaveImage, PreviewImage, the animated WEBP/PNG savers, mask
uploads), ComfyUI's ``comfy.utils.save_torch_file`` (latents, checkpoints, LoRAs) and PyAV's
``av.open`` for writing to a path (SaveVideo, SaveWEBM) write to a hidden
``.<name>.<random>.partial`` file in the same directory and rename it to the final name once
complete: the final name holds the whole file or nothing. (PyAV's partial name ends in the
final name's extension too: FFmpeg picks the container format from it.) The audio savers
encode into memory and write the finished file in one call, as ComfyUI does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

IMAGE_SAVE_SIGNATURE = "(self, fp, format=None, **params)"
SAVE_TORCH_FILE_SIGNATURE = "(sd, ckpt, metadata=None)"


def partial_path(path: str, keep_extension: bool = False) -> str:
    """The hidden temporary name next to ``path`` that a save writes before it becomes ``path``."""
    directory, name = os.path.split(path)
    extension = os.path.splitext(name)[1][:16] if keep_extension else ""
    return os.path.join(directory, f".{name[:200]}.{secrets.token_hex(4)}.partial{extension}")


@contextlib.contextmanager
def replaced_atomically(path: str) -> Iterator[str]:
    """Yields a temporary path next to ``path``; once the block is done, it becomes ``path``."""
    partial = partial_path(path)
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


class RenamedOnClose:
    """A PyAV output container writing to ``partial``: closing it renames the file to ``path``.

    Used as ComfyUI uses PyAV's container (``with av.open(...) as output:`` or ``close()``);
    every other attribute is the container's. Leaving a ``with`` block by an exception closes
    the container and deletes the partial file: no output under the final name.
    """

    def __init__(self, container: Any, partial: str, path: str):
        self._container = container
        self._partial = partial
        self._path = path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        try:
            self._container.close()
        finally:  # closing a container whose encoder failed may raise too: the partial file goes either way
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._partial)

    def close(self) -> None:
        self._container.close()
        if os.path.exists(self._partial):  # a second close() finds it renamed already
            os.replace(self._partial, self._path)


def atomic_av_open(original: Callable[..., Any]) -> Callable[..., Any]:
    """PyAV's ``av.open``: a container opened for writing to a plain path writes a partial file."""

    def open(file: Any, mode: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if mode != "w" or not _is_plain_path(file):
            return original(file, mode, *args, **kwargs)
        path = os.fspath(file)
        partial = partial_path(path, keep_extension=True)
        return RenamedOnClose(original(partial, mode, *args, **kwargs), partial, path)

    return open

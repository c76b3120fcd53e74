"""What ``/upload/image``, ``/upload/mask`` and ``/view`` take as file names, folders and types.

ComfyUI checks that a path stays inside its directory, but a name it cannot use (``a/b.png``,
``.``, a NUL byte, 300 characters), a ``type`` it does not know, a text field where the file
should be, or a preview of something that is not an image ends in a 500. These checks
refuse such requests with a 400 that says what is wrong, before ComfyUI's handler runs.
"""

from __future__ import annotations

import json
from typing import Any

DIRECTORY_TYPES = ("input", "temp", "output")
MAX_NAME_BYTES = 255  # what Linux and macOS file systems allow in one name
MAX_SUBFOLDER = 1024


def name_problem(name: Any, what: str = "file name") -> str | None:
    """Why ``name`` cannot be one file's name in a directory, or None."""
    if not isinstance(name, str) or not name:
        return f"the {what} is missing"
    if name in (".", "..") or "/" in name or "\\" in name:
        return f"the {what} {name!r} must be a plain name, without folders"
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        return f"the {what} {name!r} contains control characters"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"the {what} is {len(name.encode())} bytes long; at most {MAX_NAME_BYTES} are allowed"
    return None


def subfolder_problem(subfolder: Any) -> str | None:
    if not isinstance(subfolder, str):
        return "subfolder must be text"
    if len(subfolder) > MAX_SUBFOLDER:
        return f"subfolder is {len(subfolder)} characters long; at most {MAX_SUBFOLDER} are allowed"
    if any(ord(c) < 0x20 for c in subfolder):
        return f"subfolder {subfolder!r} contains control characters"
    parts = subfolder.replace("\\", "/").split("/")
    if subfolder.startswith(("/", "\\")) or ".." in parts:
        return f"subfolder {subfolder!r} must stay inside the directory"
    return None


def type_problem(kind: Any) -> str | None:
    if kind is not None and kind not in DIRECTORY_TYPES:
        return f"type {kind!r} is not one of {', '.join(DIRECTORY_TYPES)}"
    return None


def upload_problem(fields: Any, *, mask: bool) -> str | None:
    """Why an upload form (``image``, ``type``, ``subfolder``; a mask's ``original_ref``) is refused, or None."""
    image = fields.get("image")
    if not hasattr(image, "file") or not hasattr(image, "filename"):
        return "image must be a file (a multipart form field named 'image' with a file name)"
    problem = (name_problem(image.filename) or type_problem(fields.get("type"))
               or subfolder_problem(fields.get("subfolder", "")))
    if problem is None and mask:
        problem = original_ref_problem(fields.get("original_ref"))
    return problem


def original_ref_problem(text: Any) -> str | None:
    """A mask upload's ``original_ref``: JSON naming the image the mask belongs to."""
    try:
        ref = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        ref = None
    if not isinstance(ref, dict):
        return "original_ref must be a JSON object naming the image (filename, subfolder, type)"
    filename = ref.get("filename")
    # ComfyUI allows an annotation after the name: "name.png [output]"
    base = filename.rsplit(" [", 1)[0] if isinstance(filename, str) and filename.endswith("]") else filename
    return (name_problem(base, "original_ref filename") or type_problem(ref.get("type"))
            or subfolder_problem(ref.get("subfolder", "")))


def view_problem(query: Any) -> str | None:
    """Why a ``/view`` query is refused, or None (ComfyUI answers 404 without a filename, as before)."""
    if "filename" not in query:
        return None
    filename = query["filename"]
    base = filename.rsplit(" [", 1)[0] if filename.endswith("]") else filename
    if any(ord(c) < 0x20 for c in base):
        return f"the file name {filename!r} contains control characters"
    return type_problem(query.get("type")) or subfolder_problem(query.get("subfolder", ""))

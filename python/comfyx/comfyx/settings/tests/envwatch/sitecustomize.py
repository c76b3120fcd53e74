"""Records which environment variables a ``comfyx serve`` process reads, and when (for
``test_settings_after_start_up.py``; loaded as ``sitecustomize`` through ``PYTHONPATH``).

A read is one of a comfyx setting's variables (``COMFYX_*``, ``BMF_COMFY_*``) looked up by name, or any
access to the environment by comfyx's own code (``comfyx``, ``comfyx_kernels``). Copying the whole
environment elsewhere (a library starting a subprocess) reads no setting. Each read is appended to
``$COMFYX_TEST_ENV_READS`` as a JSON line with the phase: ``start-up`` until ComfyUI's server starts
listening, ``serving`` after.
"""

import json
import os
import sys
import threading

_LOG = os.environ["COMFYX_TEST_ENV_READS"]
_SETTING_PREFIXES = ("COMFYX_", "BMF_COMFY_")
_COMFYX_CODE = (f"{os.sep}comfyx{os.sep}", f"{os.sep}comfyx_kernels{os.sep}")
_NOT_CALLERS = (os.path.abspath(__file__), os.__file__, "<frozen os>", "_collections_abc.py",
                "<frozen _collections_abc>")
_state = {"phase": "start-up"}
_lock = threading.Lock()


def _caller() -> tuple[str, bool]:
    """Where the environment was read from, and whether as part of iterating over all of it."""
    frame, iterating = sys._getframe(2), False
    while frame is not None and frame.f_code.co_filename.endswith(_NOT_CALLERS):
        iterating = iterating or frame.f_code.co_name == "__iter__"
        frame = frame.f_back
    return ("?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"), iterating


def _note(key: str) -> None:
    caller, iterating = _caller()
    if (key.startswith(_SETTING_PREFIXES) and not iterating) or any(part in caller for part in _COMFYX_CODE):
        _write(key, caller)


def _write(key: str | None, caller: str) -> None:
    with _lock, open(_LOG, "a") as log:
        log.write(json.dumps({"phase": _state["phase"], "key": key, "caller": caller}) + "\n")


class _WatchedEnviron(type(os.environ)):
    def __getitem__(self, key):
        _note(key)
        return super().__getitem__(key)


os.environ.__class__ = _WatchedEnviron


def _serving(server_module) -> None:
    start = server_module.PromptServer.start_multi_address

    async def start_multi_address(self, *args, **kwargs):
        _state["phase"] = "serving"
        _write(None, "the server starts listening")
        return await start(self, *args, **kwargs)

    server_module.PromptServer.start_multi_address = start_multi_address


from comfyx.comfyui.hooks import after_import  # noqa: E402 - the environment is watched from here on

after_import("server", _serving)

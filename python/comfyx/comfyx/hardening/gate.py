"""The HTTP side: checks that run before ComfyUI's handlers, as one aiohttp middleware.

- ``POST /prompt``: refused with a 400 naming the problem unless the body passes
  :mod:`.intake` and its ``prompt_id``, if it gives one, is new (ComfyUI would overwrite
  that prompt's history entry); refused with a 503 once the server is shutting down.
- ``POST /upload/image``, ``/upload/mask`` and ``GET /view``: :mod:`.files`; a ``/view``
  preview of a file that is not an image is a 400, not a 500.

ComfyUI serves every route also under ``/api``; both are checked.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from PIL import UnidentifiedImageError

from comfyx.hardening import files, intake
from comfyx.hardening.settings import HardeningSettings

log = logging.getLogger("comfyx.hardening")

PROMPT_PATHS = ("/prompt", "/api/prompt")
UPLOAD_PATHS = {"/upload/image": False, "/api/upload/image": False, "/upload/mask": True, "/api/upload/mask": True}
VIEW_PATHS = ("/view", "/api/view")


class Gate:
    """One per server: the prompt ids being queued right now, and whether prompts are still taken."""

    def __init__(self, settings: HardeningSettings, prompt_queue: Any):
        self.settings = settings
        self.prompt_queue = prompt_queue
        self.reserved: set[str] = set()  # ids of prompts between their check and the queue
        self.closed: str | None = None  # why prompts are no longer taken

    def close(self, reason: str) -> None:
        self.closed = reason

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path in PROMPT_PATHS:
            return await self._prompt(request, handler)
        if request.method == "POST" and request.path in UPLOAD_PATHS:
            problem = await self._upload_problem(request, mask=UPLOAD_PATHS[request.path])
            return _refused(request, problem) if problem else await handler(request)
        if request.method == "GET" and request.path in VIEW_PATHS:
            problem = files.view_problem(request.rel_url.query)
            if problem:
                return _refused(request, problem)
            try:
                return await handler(request)
            except (UnidentifiedImageError, ValueError) as exc:  # a preview or channel of what is not an image
                return _refused(request, f"cannot make that view of {request.rel_url.query.get('filename')!r}: {exc}")
        return await handler(request)

    async def _prompt(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.closed:
            error = intake.PromptRequestError("shutting_down", "The server is shutting down", self.closed)
            return web.json_response(error.response_body(), status=503)
        try:
            content_type = request.content_type if "Content-Type" in request.headers else ""
            intake.check_content_type(content_type)
            intake.check_size(request.content_length, self.settings.max_prompt_bytes)
            body = await request.read()  # ComfyUI's handler reads the same bytes again (aiohttp keeps them)
            intake.check_size(len(body), self.settings.max_prompt_bytes)
            data = intake.parse(body, self.settings.max_prompt_depth)
            intake.check_fields(data)
            prompt_id = data.get("prompt_id")
            if prompt_id is not None and (prompt_id in self.reserved or self.prompt_queue.knows(prompt_id)):
                raise intake.PromptRequestError("prompt_id_in_use", f"prompt_id {prompt_id!r} is already in use",
                                                "give each prompt its own id, or none and the server makes one")
        except intake.PromptRequestError as err:
            log.warning("comfyx: refused a prompt: %s (%s)", err.message, err.details[:200])
            return web.json_response(err.response_body(), status=400)
        if prompt_id is None:
            return await handler(request)
        self.reserved.add(prompt_id)
        try:
            return await handler(request)
        finally:
            self.reserved.discard(prompt_id)

    async def _upload_problem(self, request: web.Request, *, mask: bool) -> str | None:
        try:
            fields = await request.post()  # kept by aiohttp for ComfyUI's handler
        except ValueError as exc:  # a body that is not the form it claims to be
            return f"the upload is not readable form data: {exc}"
        return files.upload_problem(fields, mask=mask)


def _refused(request: web.Request, problem: str) -> web.Response:
    log.warning("comfyx: refused %s %s: %s", request.method, request.path, problem)
    return web.Response(status=400, text=f"{problem}\n")

"""Requests from other sites' pages are refused unless CORS is configured.

ComfyUI's origin check (used when ``--enable-cors-header`` is not given) compares the
``Origin`` and ``Host`` headers only when the host is a loopback address, and lets
``Origin: null`` through: a sandboxed iframe, a ``file:`` page or a redirected form can
then queue prompts on a local server, and any site can post to one listening on a LAN
address. Here a request is refused (403) when its ``Origin`` is ``null`` or names another
host than ``Host``, whatever the host, before ComfyUI's own check runs. Requests without
an ``Origin`` (scripts, ``curl``, top-level navigation) are not affected.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

log = logging.getLogger("comfyx.hardening")

FACTORY_SIGNATURE = "()"


def cross_site_reason(headers: Mapping[str, str]) -> str | None:
    """Why a request with these headers comes from another site's page, or None."""
    origin = headers.get("Origin")
    if origin is None:
        return None
    if origin.strip().lower() == "null":
        return "Origin: null (a sandboxed frame, a file: page or a redirect) is not allowed"
    host = headers.get("Host")
    if not host:
        return None
    parsed = urllib.parse.urlsplit(origin.strip())
    served = urllib.parse.urlsplit("//" + host.strip())
    try:
        ports = parsed.port, served.port
    except ValueError:
        return f"Origin {origin!r} is not a valid origin"
    if not parsed.hostname:
        return f"Origin {origin!r} is not a valid origin"
    # As ComfyUI's check: where either side gives no port, the host names alone are compared.
    same = parsed.hostname == served.hostname and (None in ports or ports[0] == ports[1])
    return None if same else f"Origin {origin} is another site than this server ({host})"


def refusing_factory(stock_factory: Callable[[], Any]) -> Callable[[], Any]:
    """Stands in for ``server.create_origin_only_middleware``: ours first, then ComfyUI's."""

    def create_origin_only_middleware() -> Any:
        stock = stock_factory()

        @web.middleware
        async def refuse_cross_site(request: web.Request, handler: Any) -> web.StreamResponse:
            reason = cross_site_reason(request.headers)
            if reason is not None:
                log.warning("comfyx: refused %s %s: %s", request.method, request.path, reason)
                return web.Response(status=403, text=f"{reason}; to allow other origins, start ComfyUI with "
                                                      "--enable-cors-header ORIGIN\n")
            return await stock(request, handler)

        return refuse_cross_site

    return create_origin_only_middleware

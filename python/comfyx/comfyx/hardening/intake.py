"""What a ``POST /prompt`` body must be before ComfyUI sees it; each refusal names what is wrong.

ComfyUI reads the body with no limit on its size or nesting and trusts its types: invalid
JSON, an empty or ``null`` body, a ``prompt`` that is not an object or ``"number": "abc"``
end in a 500; ``"extra_data": 5`` without a ``client_id`` and anything nested ~550 levels
deep are queued and kill the prompt worker. Here the body is refused (400, in ComfyUI's
error format) unless it is at most ``max_bytes`` of JSON nested at most ``max_depth``
levels, and every field ComfyUI reads has the type it expects.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any

# Content types a JSON body may come with: JSON itself, and the defaults of HTTP clients
# that send a raw body (urllib: form-urlencoded, fetch with a string: text/plain), which
# ComfyUI's own API example relies on. Cross-site browser requests are refused by origin.
JSON_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")
MAX_ID_LENGTH = 256


@dataclass
class PromptRequestError(Exception):
    """Why a prompt request is refused: ComfyUI's error ``type``, a message and details."""

    type: str
    message: str
    details: str = ""
    extra_info: dict = field(default_factory=dict)

    def response_body(self) -> dict:
        error = {"type": self.type, "message": self.message, "details": self.details, "extra_info": self.extra_info}
        return {"error": error, "node_errors": {}}


def check_content_type(content_type: str) -> None:
    """An absent type is accepted (a script); a multipart or other non-JSON body is refused."""
    if content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise PromptRequestError("invalid_content_type", "POST /prompt takes a JSON body",
                                 f"Content-Type is {content_type}; send application/json")


def check_size(length: int | None, max_bytes: int) -> None:
    if length is not None and length > max_bytes:
        raise PromptRequestError(
            "prompt_too_large", f"The request body is {length} bytes; the limit is {max_bytes}",
            "comfyx serve --max-prompt-bytes (COMFYX_MAX_PROMPT_BYTES) raises it")


def parse(body: bytes, max_depth: int) -> dict:
    """The body as a JSON object nested at most ``max_depth`` levels; raises PromptRequestError."""
    if not body.strip():
        raise PromptRequestError("invalid_json", "The request body is empty", "send a JSON object")
    try:
        data = json.loads(body)
    except RecursionError:
        data = None  # deeper than Python's parser goes: refused by depth below
        depth = math.inf
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PromptRequestError("invalid_json", "The request body is not valid JSON", str(exc)) from None
    else:
        depth = nesting_depth(data, max_depth)
    if depth > max_depth:
        raise PromptRequestError(
            "prompt_too_deep", f"The request body nests more than {max_depth} levels of arrays and objects",
            "comfyx serve --max-prompt-depth (COMFYX_MAX_PROMPT_DEPTH) raises the limit")
    if not isinstance(data, dict):
        raise PromptRequestError("invalid_prompt_request", "The request body must be a JSON object",
                                 f"got {_json_type(data)}")
    return data


def nesting_depth(value: Any, limit: int) -> float:
    """How deep arrays and objects nest in ``value`` (a scalar: 0), counted without recursion;
    stops counting (and returns ``limit + 1``) as soon as it passes ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        children = current.values() if isinstance(current, dict) else current if isinstance(current, list) else None
        if children is None:
            continue
        if depth > limit:
            return limit + 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_fields(data: dict) -> None:
    """The fields ComfyUI's ``POST /prompt`` handler and executor read, with the types they need."""
    if "number" in data and not _is_number(data["number"]):
        raise _field_error("number", "a finite number", data["number"])
    for name in ("client_id", "prompt_id"):
        if name in data:
            _check_id(name, data[name])
    if "extra_data" in data:
        if not isinstance(data["extra_data"], dict):
            raise _field_error("extra_data", "an object", data["extra_data"])
        if "client_id" in data["extra_data"]:
            _check_id("extra_data.client_id", data["extra_data"]["client_id"])
    targets = data.get("partial_execution_targets")
    if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise _field_error("partial_execution_targets", "an array of node ids", targets)
    if "prompt" in data:
        check_prompt(data["prompt"])


def check_prompt(prompt: Any) -> None:
    """An object of nodes, each an object with a ``class_type`` string and an ``inputs`` object."""
    if not isinstance(prompt, dict):
        raise _field_error("prompt", "an object of nodes", prompt)
    for node_id, node in prompt.items():
        # "" would be sent as `executing` {"node": ""}, which clients that test the node's truth
        # take for the end of the prompt (node null); a bound keeps every event small.
        if not node_id or len(node_id) > MAX_ID_LENGTH:
            raise PromptRequestError("invalid_prompt", f"Node id {node_id[:40]!r} is not allowed",
                                     f"node ids are 1 to {MAX_ID_LENGTH} characters")
        if not isinstance(node, dict):
            raise _field_error(f"node {node_id!r}", "an object", node, "invalid_prompt")
        if not isinstance(node.get("class_type"), str):
            raise _field_error(f"node {node_id!r}: class_type", "a string", node.get("class_type"), "invalid_prompt")
        if not isinstance(node.get("inputs"), dict):
            raise _field_error(f"node {node_id!r}: inputs", "an object", node.get("inputs"), "invalid_prompt")


def _check_id(name: str, value: Any) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise _field_error(name, f"a string of 1 to {MAX_ID_LENGTH} characters", value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _field_error(name: str, expected: str, value: Any, kind: str = "invalid_prompt_request") -> PromptRequestError:
    return PromptRequestError(kind, f"{name} must be {expected}",
                              f"got {_json_type(value)}: {reprlib.repr(value)}", {"field": name})


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


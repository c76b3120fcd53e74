"""ComfyUI's prompt validation, made iterative: long chains validate, cycles and bad links are named.

ComfyUI's ``execution.validate_inputs`` validates a node after recursing into every node it
links to, a few Python frames per node: a chain of about 1,000 nodes exceeds Python's
recursion limit and is refused with a RecursionError, and a link cycle recurses until it
does, ending in a 400 that names no node. The replacement walks a node's ancestry with an
explicit stack first: a cycle or a link to a missing node or output becomes that node's
error (in ``node_errors``), and ComfyUI's own function then validates the ancestors
dependencies-first, each finding the nodes it links to already in ``validated``, so it
never recurses more than one level. Errors and their wording are ComfyUI's otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import nodes

ValidateInputs = Callable[[str, dict, str, dict], Awaitable[tuple]]
SIGNATURE = "(prompt_id, prompt, item, validated)"


def iterative(stock_validate_inputs: ValidateInputs) -> ValidateInputs:
    """``execution.validate_inputs`` without recursion through the graph."""

    async def validate_inputs(prompt_id: str, prompt: dict, item: str, validated: dict) -> tuple:
        if item in validated:
            return validated[item]
        order, errors = _ancestry(prompt, item, validated)
        for node_id, reasons in errors.items():
            validated[node_id] = (False, reasons, node_id)
        for node_id in order[:-1]:
            if node_id not in validated:
                # An exception is not lost: ComfyUI reports it as the dependent's "inner" error when
                # validating the dependent, which validates this node again (it is not in `validated`).
                with contextlib.suppress(Exception):
                    await stock_validate_inputs(prompt_id, prompt, node_id, validated)
        return await stock_validate_inputs(prompt_id, prompt, item, validated)

    return validate_inputs


def _ancestry(prompt: dict, item: str, validated: dict) -> tuple[list[str], dict[str, list[dict]]]:
    """The unvalidated ancestors of ``item`` (``item`` last), dependencies first, and the errors found:
    links to what is not there, and cycles (each node of a cycle gets the error)."""
    order: list[str] = []
    errors: dict[str, list[dict]] = {}
    state: dict[str, str] = {}  # "open" while on the stack, "done" once its ancestors are ordered
    path: list[str] = []  # the open nodes, from item down
    stack: list[tuple[str, list[str]]] = [(item, _linked(prompt, item, errors))]
    state[item] = "open"
    path.append(item)
    while stack:
        node_id, todo = stack[-1]
        if not todo:
            stack.pop()
            path.pop()
            state[node_id] = "done"
            order.append(node_id)
            continue
        linked = todo.pop()
        if linked in validated or state.get(linked) == "done":
            continue
        if state.get(linked) == "open":
            cycle = path[path.index(linked):]
            for member in cycle:
                errors.setdefault(member, []).append(_cycle_error(cycle, member))
            continue
        state[linked] = "open"
        path.append(linked)
        stack.append((linked, _linked(prompt, linked, errors)))
    return order, errors


def _linked(prompt: dict, node_id: str, errors: dict[str, list[dict]]) -> list[str]:
    """The nodes ``node_id``'s declared inputs link to; a link to a missing node or output is recorded
    in ``errors``. (ComfyUI's validation looks at declared inputs only, and so does this.)"""
    node = prompt[node_id]
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        return []  # ComfyUI's own validation reports it
    declared = nodes.NODE_CLASS_MAPPINGS[node["class_type"]].INPUT_TYPES()
    names = set(declared.get("required") or {}) | set(declared.get("optional") or {})
    linked = []
    for name in names & inputs.keys():
        value = inputs[name]
        if not (isinstance(value, list) and len(value) == 2):
            continue  # a constant, or a list ComfyUI reports as a bad link
        source, slot = value
        problem = _link_problem(prompt, source, slot)
        if problem is not None:
            errors.setdefault(node_id, []).append({
                "type": "bad_linked_input",
                "message": f"Bad linked input: {problem}",
                "details": f"{name}",
                "extra_info": {"input_name": name, "linked_node": value},
            })
        else:
            linked.append(source)
    return linked


def _link_problem(prompt: dict, source: Any, slot: Any) -> str | None:
    if not isinstance(source, str) or source not in prompt:
        return f"node {source!r} is not in the prompt"
    if not isinstance(slot, int) or isinstance(slot, bool):
        return f"output index {slot!r} of node {source!r} is not a whole number"
    class_type = prompt[source]["class_type"]
    outputs = len(nodes.NODE_CLASS_MAPPINGS[class_type].RETURN_TYPES)
    if not 0 <= slot < outputs:
        return f"node {source!r} ({class_type}) has no output {slot} (it has {outputs})"
    return None


def _cycle_error(cycle: list[str], member: str) -> dict:
    start = cycle.index(member)
    around = cycle[start:] + cycle[:start] + [member]
    return {
        "type": "dependency_cycle",
        "message": "Dependency cycle: the node depends on its own output",
        "details": " -> ".join(around),
        "extra_info": {"cycle": cycle},
    }

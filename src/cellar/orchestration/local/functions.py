"""HOT intrinsic functions: static checks, dependency extraction and resolution.

`get_param`, `get_resource`, `get_attr`, `list_join` and `str_replace` with Heat's rules
(`heat/engine/hot/functions.py`). A function is a mapping with exactly one key that names it.
The dependency graph is implicit (get_resource/get_attr in properties and metadata) plus
explicit (depends_on); a cycle is refused before anything is created.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cellar.orchestration.local.template import PSEUDO_PARAMETERS, Template, TemplateError

FUNCTIONS = frozenset({"get_param", "get_resource", "get_attr", "list_join", "str_replace"})


class Context(Protocol):
    """What resolution needs from a running stack."""

    def param(self, name: str) -> Any: ...

    def resource_ref(self, name: str) -> Any: ...

    def resource_attr(self, name: str, attribute: str | None) -> Any: ...


def _function(snippet: Any) -> tuple[str, Any] | None:
    if isinstance(snippet, Mapping) and len(snippet) == 1:
        ((key, args),) = snippet.items()
        if key in FUNCTIONS:
            return key, args
    return None


# Static checks ---------------------------------------------------------------------------

AttributeCheck = Callable[[str, str], str | None]
"""(resource name, attribute) -> an error message, or None if the attribute exists."""


def validate(
    snippet: Any, where: str, template: Template, check_attribute: AttributeCheck | None = None
) -> None:
    """Check every function call in `snippet`: argument shapes and the names they refer to."""
    call = _function(snippet)
    if call is None:
        if isinstance(snippet, Mapping):
            for key, value in snippet.items():
                validate(value, f"{where}.{key}", template, check_attribute)
        elif isinstance(snippet, list):
            for index, value in enumerate(snippet):
                validate(value, f"{where}[{index}]", template, check_attribute)
        return
    name, args = call
    here = f"{where}.{name}"
    if name == "get_param":
        target = args[0] if isinstance(args, list) and args else args
        if not isinstance(target, str):
            raise TemplateError(here, "takes a parameter name or [name, path...]")
        if target not in template.parameters and target not in PSEUDO_PARAMETERS:
            raise TemplateError(here, f"unknown parameter {target!r}")
        if isinstance(args, list):
            for item in args[1:]:
                validate(item, here, template, check_attribute)
    elif name == "get_resource":
        if not isinstance(args, str):
            raise TemplateError(here, "takes a resource name")
        if args not in template.resources:
            raise TemplateError(here, f"unknown resource {args!r}")
    elif name == "get_attr":
        if not isinstance(args, list) or not args or not isinstance(args[0], str):
            raise TemplateError(here, "takes [resource, attribute, path...]")
        if args[0] not in template.resources:
            raise TemplateError(here, f"unknown resource {args[0]!r}")
        if len(args) > 1:
            if not isinstance(args[1], str):
                raise TemplateError(here, "the attribute must be a string")
            if check_attribute is not None:
                problem = check_attribute(args[0], args[1])
                if problem is not None:
                    raise TemplateError(here, problem)
        for item in args[2:]:
            validate(item, here, template, check_attribute)
    elif name == "list_join":
        if not isinstance(args, list) or len(args) < 2 or not isinstance(args[0], str):
            raise TemplateError(here, "takes [delimiter, list, ...]")
        for item in args[1:]:
            validate(item, here, template, check_attribute)
    else:  # str_replace
        if not isinstance(args, Mapping) or set(args) != {"template", "params"}:
            raise TemplateError(here, "takes {template: ..., params: {...}}")
        validate(args["template"], f"{here}.template", template, check_attribute)
        params = args["params"]
        if not isinstance(params, Mapping) and _function(params) is None:
            raise TemplateError(f"{here}.params", "must be a mapping")
        validate(params, f"{here}.params", template, check_attribute)


def referenced_resources(snippet: Any) -> set[str]:
    """Names of the resources that `snippet` refers to through get_resource/get_attr."""
    found: set[str] = set()
    _collect(snippet, found)
    return found


def _collect(snippet: Any, found: set[str]) -> None:
    call = _function(snippet)
    if call is not None:
        name, args = call
        if name == "get_resource" and isinstance(args, str):
            found.add(args)
            return
        if name == "get_attr" and isinstance(args, list) and args and isinstance(args[0], str):
            found.add(args[0])
            for item in args[1:]:
                _collect(item, found)
            return
        _collect(args, found)
    elif isinstance(snippet, Mapping):
        for value in snippet.values():
            _collect(value, found)
    elif isinstance(snippet, list):
        for value in snippet:
            _collect(value, found)


def dependencies(template: Template) -> dict[str, frozenset[str]]:
    """For each resource, the resources it requires (implicit and explicit)."""
    graph: dict[str, frozenset[str]] = {}
    for name, definition in template.resources.items():
        needed = referenced_resources(definition.properties)
        needed |= referenced_resources(definition.metadata)
        needed.update(definition.depends_on)
        needed.discard(name)
        graph[name] = frozenset(needed)
    return graph


def check_acyclic(graph: Mapping[str, frozenset[str]]) -> None:
    """Raise `TemplateError` naming the resources of a cycle, if there is one."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    for start in graph:
        if colour[start] != white:
            continue
        path: list[str] = [start]
        stack = [iter(sorted(graph[start]))]
        colour[start] = grey
        while stack:
            advanced = False
            for nxt in stack[-1]:
                if nxt not in colour:
                    continue
                if colour[nxt] == grey:
                    cycle = path[path.index(nxt) :]
                    names = ", ".join(repr(n) for n in cycle)
                    raise TemplateError("resources", f"circular dependency between {names}")
                if colour[nxt] == white:
                    colour[nxt] = grey
                    path.append(nxt)
                    stack.append(iter(sorted(graph[nxt])))
                    advanced = True
                    break
            if not advanced:
                colour[path.pop()] = black
                stack.pop()


# Resolution ------------------------------------------------------------------------------


def resolve(snippet: Any, context: Context) -> Any:
    """`snippet` with every function call replaced by its value (recursively)."""
    call = _function(snippet)
    if call is None:
        if isinstance(snippet, Mapping):
            return {key: resolve(value, context) for key, value in snippet.items()}
        if isinstance(snippet, list):
            return [resolve(value, context) for value in snippet]
        return snippet
    name, args = call
    if name == "get_param":
        if isinstance(args, list):
            value = context.param(resolve(args[0], context))
            return _walk(value, [resolve(item, context) for item in args[1:]], missing="")
        return context.param(args)
    if name == "get_resource":
        return context.resource_ref(args)
    if name == "get_attr":
        attribute = resolve(args[1], context) if len(args) > 1 else None
        value = context.resource_attr(args[0], attribute)
        return _walk(value, [resolve(item, context) for item in args[2:]], missing=None)
    if name == "list_join":
        delimiter = args[0]
        items: list[Any] = []
        for part in args[1:]:
            resolved = resolve(part, context)
            if not isinstance(resolved, list):
                raise TemplateError("list_join", f"expected a list, got {resolved!r}")
            items.extend(resolved)
        return delimiter.join(_text(item) for item in items)
    # str_replace
    text = resolve(args["template"], context)
    params = resolve(args["params"], context)
    if not isinstance(text, str):
        raise TemplateError("str_replace.template", f"expected a string, got {text!r}")
    if not isinstance(params, Mapping):
        raise TemplateError("str_replace.params", f"expected a mapping, got {params!r}")
    return _replace(text, {str(key): _text(value) for key, value in params.items()})


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _replace(text: str, params: Mapping[str, str]) -> str:
    """Heat's order: the longest key first, then the lexicographically smaller one; each
    piece of the text is replaced at most once."""
    keys = sorted(params, key=lambda key: (-len(key), key))

    def substitute(piece: str, index: int) -> str:
        if index == len(keys):
            return piece
        key = keys[index]
        if not key:
            return substitute(piece, index + 1)
        parts = piece.split(key)
        return params[key].join(substitute(part, index + 1) for part in parts)

    return substitute(text, 0)


def _walk(value: Any, path: list[Any], *, missing: Any) -> Any:
    for step in path:
        if isinstance(value, list) and isinstance(step, str) and step.isdigit():
            step = int(step)
        in_map = isinstance(value, Mapping) and step in value
        in_list = isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value)
        if in_map or in_list:
            value = value[step]
        else:
            return missing
    return value

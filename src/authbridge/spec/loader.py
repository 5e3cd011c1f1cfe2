"""YAML ⇄ Integration. Errors carry the source name, the field path and the line."""

from __future__ import annotations

import typing

import yaml

from authbridge.errors import ErrorItem, SpecError
from authbridge.spec.models import Integration
from authbridge.spec.validate import validate_spec

__all__ = ["dump_spec", "load_spec", "load_specs", "spec_to_dict"]

_ORDER = ("key", "name", "description", "parameters", "auth", "token", "request", "refresh", "test")


def _line_map(node: yaml.Node | None, prefix: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """Map each dotted path of a YAML document to the (1-based) line where it starts."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out[path] = key_node.start_mark.line + 1
            _line_map(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}" if prefix else str(index)
            out[path] = item.start_mark.line + 1
            _line_map(item, path, out)
    return out


def _line_finder(lines: dict[str, int]) -> typing.Callable[[str], int | None]:
    def line_of(path: str) -> int | None:
        while path:
            if path in lines:
                return lines[path]
            path = path.rpartition(".")[0]
        return None

    return line_of


def _parse_documents(text: str, source: str | None) -> list[tuple[object, yaml.Node | None]]:
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        data = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "is not valid YAML"
        raise SpecError([ErrorItem("", f"not valid YAML: {problem}", line)], source=source) from None
    return [(d, n) for d, n in zip(data, nodes, strict=True) if d is not None]


def load_specs(text: str, *, source: str | None = None) -> list[Integration]:
    """Load every integration of a YAML stream (documents separated by ``---``)."""
    documents = _parse_documents(text, source)
    if not documents:
        raise SpecError([ErrorItem("", "the file holds no integration")], source=source)
    return [validate_spec(d, source=source, line_of=_line_finder(_line_map(n))) for d, n in documents]


def load_spec(text: str, *, source: str | None = None) -> Integration:
    """Load exactly one integration from YAML (or JSON, which is YAML too)."""
    specs = load_specs(text, source=source)
    if len(specs) != 1:
        raise SpecError([ErrorItem("", f"expected one integration, found {len(specs)}")], source=source)
    return specs[0]


def spec_to_dict(integration: Integration) -> dict[str, typing.Any]:
    """The spec as plain data, defaults left out, ``auth.type`` always present, secrets masked."""
    data = integration.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    auth = data.get("auth", {})
    data["auth"] = {"type": integration.auth.type, **{k: v for k, v in auth.items() if k != "type"}}
    data["key"], data["name"] = integration.key, integration.name
    return {k: data[k] for k in _ORDER if k in data}


def dump_spec(integration: Integration) -> str:
    """Write the spec as YAML that ``load_spec`` reads back to an equal model (secrets masked)."""
    return yaml.safe_dump(spec_to_dict(integration), sort_keys=False, allow_unicode=True, width=100)

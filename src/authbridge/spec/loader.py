"""YAML ⇄ Integration. Errors carry the source name, the field path and the line."""

from __future__ import annotations

import typing

import yaml

from authbridge.errors import ErrorItem, SpecError
from authbridge.spec.models import Integration
from authbridge.spec.validate import validate_spec

__all__ = ["MAX_DEPTH", "MAX_NODES", "dump_spec", "load_spec", "load_specs", "spec_to_dict"]

#: Most YAML nodes (scalars, lists, mappings) one stream may hold; a large real spec has a few hundred.
MAX_NODES = 20_000
#: Deepest nesting of lists and mappings; a spec is about five levels deep.
MAX_DEPTH = 50

_ORDER = (
    "key",
    "name",
    "description",
    "parameters",
    "auth",
    "token",
    "request",
    "refresh",
    "rate_limit",
    "pagination",
    "test",
)


def _line_map(node: yaml.Node | None, prefix: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """Map each dotted path of a YAML document to the (1-based) line where it starts."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            out.setdefault(path, key_node.start_mark.line + 1)
            _line_map(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = f"{prefix}.{index}" if prefix else str(index)
            out[path] = item.start_mark.line + 1
            _line_map(item, path, out)
    return out


def _duplicate_keys(node: yaml.Node | None, prefix: str = "") -> list[ErrorItem]:
    """Keys given twice in one mapping: YAML would silently keep the last one."""
    errors: list[ErrorItem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    errors.append(ErrorItem(path, "is given twice", key_node.start_mark.line + 1))
                seen.add(key_node.value)
            errors += _duplicate_keys(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            errors += _duplicate_keys(item, f"{prefix}.{index}" if prefix else str(index))
    return errors


def _line_finder(lines: dict[str, int]) -> typing.Callable[[str], int | None]:
    def line_of(path: str) -> int | None:
        while path:
            if path in lines:
                return lines[path]
            path = path.rpartition(".")[0]
        return None

    return line_of


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases and caps nodes and nesting, so no input makes loading slow.

    An alias makes the node tree a graph: a few hundred bytes of nested aliases ("billion laughs")
    expand to millions of nodes when walked or constructed. A spec never needs one, so the first
    alias is refused with its line, before anything is built. The caps bound what is left: the
    work done is then linear in the size of the text.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a spec: write the value out", event.start_mark
            )
        event = self.peek_event()  # type: ignore[no-untyped-call]
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"the YAML holds more than {MAX_NODES} values", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"the YAML is nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _parse_documents(text: str, source: str | None) -> list[tuple[object, yaml.Node]]:
    """Parse each document of a YAML stream once, keeping its node tree for line numbers."""
    loader = _BoundedLoader(text)
    documents: list[tuple[object, yaml.Node]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            data = loader.construct_document(node)
            if data is not None:
                documents.append((data, node))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "is not valid YAML"
        raise SpecError([ErrorItem("", f"not valid YAML: {problem}", line)], source=source) from None
    finally:
        loader.dispose()
    return documents


def load_specs(text: str, *, source: str | None = None) -> list[Integration]:
    """Load every integration of a YAML stream (documents separated by ``---``).

    Raises:
        SpecError: listing every problem of every document, each with its line.
    """
    documents = _parse_documents(text, source)
    if not documents:
        raise SpecError([ErrorItem("", "the file holds no integration")], source=source)
    specs: list[Integration] = []
    problems: list[ErrorItem] = []
    for data, node in documents:
        duplicates = _duplicate_keys(node)
        try:
            specs.append(validate_spec(data, source=source, line_of=_line_finder(_line_map(node))))
        except SpecError as exc:
            problems += sorted([*duplicates, *exc.errors], key=lambda item: item.line or 0)
        else:
            problems += duplicates
    if problems:
        raise SpecError(problems, source=source)
    return specs


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


class _Dumper(yaml.SafeDumper):
    """PyYAML writes NEL (U+0085) raw in plain and single-quoted scalars, and reads it back as a line
    break; double quotes escape it as ``\\N``."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"' if "\x85" in data else None)


_Dumper.add_representer(str, _represent_str)


def dump_spec(integration: Integration) -> str:
    """Write the spec as YAML that ``load_spec`` reads back to an equal model (secrets masked)."""
    return yaml.dump(spec_to_dict(integration), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)

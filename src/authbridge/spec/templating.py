"""Parse and render the placeholders of integration spec fields, safely for URLs and headers."""

from __future__ import annotations

import base64
import functools
import re
import string
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeAlias
from urllib.parse import SplitResult, quote, unquote, urlsplit

from authbridge.errors import TemplateError, UnsafeValueError
from authbridge.spec.durations import parse_duration

__all__ = [
    "Template",
    "TemplateSource",
    "check_url_template",
    "dns_name_problem",
    "reference_contexts",
    "references_of",
    "dot_segment",
    "render_header",
    "render_path",
    "render_text",
    "render_url",
    "unix_time_template",
]

TemplateSource: TypeAlias = str | Sequence[str]
"""A field value: one template, or a list of alternatives of which the first renderable one wins."""

Clock: TypeAlias = Callable[[], datetime]
Values: TypeAlias = Mapping[str, str | None]

FUNCTIONS = ("base64", "now", "uuid")
NOW_FORMATS = ("iso8601", "unix", "unix_ms")
#: The strftime directives a custom ``now()`` format may use: portable, locale-free (``%c``, ``%x``, ``%s``
#: and the platform's ``%-d`` are not).
NOW_DIRECTIVES = frozenset("aAbBdfGHIjmMpSuUVwWyYzZ%")
#: The largest ``now()`` offset either way.
MAX_NOW_OFFSET = timedelta(days=366)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_CALL = re.compile(rf"({_IDENT})\((.*)\)", re.DOTALL)
_PUNCTUATION = frozenset(string.punctuation) - frozenset("(){}'\"")
_TOKEN = re.compile(r"(\{\{|\}\})|\{((?:'[^']*'|[^{}'])*)\}|([{}])")
_BASE64_ARG = re.compile(rf"('[^']*')|({_IDENT}(?:\.{_IDENT})*)|(.)", re.DOTALL)
_HOST_PART = re.compile(r"[A-Za-z0-9.-]+")
_WHOLE_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: What no header may carry: every control character but HTAB (CR, LF and NUL split or end a header).
_BAD_HEADER_CHARS = frozenset(chr(code) for code in (*range(0x20), 0x7F)) - {"\t"}


@dataclass(frozen=True, slots=True)
class _Placeholder:
    """One ``{expr}``; ``function`` is None for a plain reference. Literal ``args`` start with a quote."""

    expr: str
    function: str | None
    args: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(arg for arg in self.args if not arg.startswith("'"))


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template (immutable, hashable). Build it with ``Template.parse``.

    ```
    template = Template.parse("Basic {base64(client_id:client_secret)}")
    assert template.references == {"client_id", "client_secret"}
    assert template.functions == {"base64"}
    ```
    """

    source: str
    references: frozenset[str] = field(compare=False, repr=False)
    functions: frozenset[str] = field(compare=False, repr=False)
    _parts: tuple[str | _Placeholder, ...] = field(compare=False, repr=False)
    _ordered: tuple[str, ...] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, source: str) -> Template:
        """Parse ``source``; results are cached.

        Raises:
            TemplateError: the syntax is wrong, a dotted name is not ``credentials.<field>``, or a
                function is unknown or called with arguments it does not accept.
        """
        return _parse(source)


#: The references with a dot: a credential field, and a value a token step captured.
_DOTTED = ("credentials.", "captured.")


def _reference(name: str, expr: str) -> str:
    if name in ("credentials", "captured") or ("." in name and not name.startswith(_DOTTED)):
        raise TemplateError(
            f"{{{expr}}}: {name!r} is not a reference; only credentials.<field> and captured.<name> have a dot"
        )
    return name


def _now_args(expr: str, args: str) -> tuple[str, str, str]:
    """``now([format][,offset])``: the kind (a NOW_FORMATS entry or ``strftime``), its strftime format, offset in ms.

    ``format`` is ``iso8601`` (the default), ``unix``, ``unix_ms`` or a quoted strftime format
    (``'%Y-%m-%d'``); ``offset`` is ``+`` or ``-`` and a duration (``+5m``, ``-1h30m``, ``+90s``).
    """
    usage = (
        f"{{{expr}}}: now() takes a format ({', '.join(NOW_FORMATS)} or a quoted strftime format such as "
        "'%Y-%m-%d') and/or an offset such as +5m or -1h, e.g. {now(unix,+5m)}"
    )
    head, comma, tail = args.partition(",") if not args.startswith("'") else _split_quoted(args)
    if not comma and head[:1] in ("+", "-"):
        head, tail = "", head
    elif comma and not (head and tail):
        raise TemplateError(usage)
    if head and head not in NOW_FORMATS and not (len(head) >= 2 and head[0] == head[-1] == "'"):
        raise TemplateError(usage)
    kind, fmt = (head or "iso8601", "") if not head.startswith("'") else ("strftime", head[1:-1])
    if kind == "strftime":
        _check_strftime(expr, fmt)
    offset_ms = 0
    if tail:
        if tail[0] not in "+-":
            raise TemplateError(usage)
        try:
            offset = parse_duration(tail[1:])
        except ValueError as exc:
            raise TemplateError(f"{{{expr}}}: the offset {tail!r} is not a duration: {exc}") from None
        if offset > MAX_NOW_OFFSET:
            raise TemplateError(f"{{{expr}}}: the offset {tail!r} is more than {MAX_NOW_OFFSET.days} days")
        offset_ms = (offset // timedelta(milliseconds=1)) * (-1 if tail[0] == "-" else 1)
    return (f"'{kind}", f"'{fmt}", f"'{offset_ms}")


def _split_quoted(args: str) -> tuple[str, str, str]:
    end = args.find("'", 1)
    head, rest = args[: end + 1], args[end + 1 :]
    if rest and not rest.startswith(","):
        return head + rest, "", ""  # refused by the caller: text after the quoted format
    return head, rest[:1], rest[1:]


def _check_strftime(expr: str, fmt: str) -> None:
    if not fmt or len(fmt) > 100:
        raise TemplateError(f"{{{expr}}}: a now() format must be 1 to 100 characters")
    for match in re.finditer(r"%(.?)", fmt):
        directive = match.group(1)
        if directive not in NOW_DIRECTIVES or not directive:
            allowed = " ".join(f"%{d}" for d in sorted(NOW_DIRECTIVES))
            raise TemplateError(
                f"{{{expr}}}: %{directive} is not a supported now() format directive (supported: {allowed})"
            )


def _parse_expression(expr: str) -> _Placeholder:
    if _REFERENCE.fullmatch(expr):
        return _Placeholder(expr, None, (_reference(expr, expr),))
    call = _CALL.fullmatch(expr)
    if call is None:
        raise TemplateError(f"{{{expr}}} is neither a reference nor a function call")
    name, args = call.groups()
    if name == "uuid" and args:
        raise TemplateError(f"{{{expr}}}: uuid() takes no arguments")
    if name == "now":
        return _Placeholder(expr, name, _now_args(expr, args))
    if name == "uuid":
        return _Placeholder(expr, name, ())
    if name != "base64":
        raise TemplateError(f"{{{expr}}}: unknown function {name!r}; known functions: {', '.join(FUNCTIONS)}")
    items: list[str] = []
    for match in _BASE64_ARG.finditer(args):
        quoted, reference, other = match.groups()
        if reference:
            items.append(_reference(reference, expr))
        elif quoted:
            items.append(quoted[:-1])  # keeps the opening quote, which marks it as literal text
        elif other in _PUNCTUATION:
            items.append(f"'{other}")
        else:
            raise TemplateError(f"{{{expr}}}: unexpected {other!r} in base64(); quote literal text: 'abc'")
    if not items:
        raise TemplateError(f"{{{expr}}}: base64() needs at least one argument")
    return _Placeholder(expr, name, tuple(items))


@functools.lru_cache(maxsize=2048)
def _parse(source: str) -> Template:
    parts: list[str | _Placeholder] = []
    literal, pos = "", 0
    for match in _TOKEN.finditer(source):
        escaped, expr, lone = match.groups()
        literal += source[pos : match.start()] + (escaped or "")[:1]
        pos = match.end()
        if lone == "}":
            raise TemplateError(f"a single '}}' at position {match.start()}; write '}}}}' for a literal brace")
        if lone == "{":
            raise TemplateError(
                f"the '{{' at position {match.start()} starts no placeholder (a '}}' to close it, quotes "
                "closed, no '{' inside); write '{{' for a literal brace"
            )
        if expr is None:
            continue
        if expr.startswith("now("):
            expr = re.sub(r"('[^']*')|,\s+", lambda m: m.group(1) or ",", expr)  # {now(unix, +5m)} reads well
        if not expr or re.search(r"\s", re.sub(r"'[^']*'", "", expr)):
            what = "contains whitespace" if expr else "is empty"
            raise TemplateError(f"the placeholder at position {match.start()} {what}")
        parts += [literal, _parse_expression(expr)] if literal else [_parse_expression(expr)]
        literal = ""
    literal += source[pos:]
    parts += [literal] if literal else []
    placeholders = [part for part in parts if isinstance(part, _Placeholder)]
    ordered = tuple(dict.fromkeys(name for ph in placeholders for name in ph.names))
    functions = frozenset(ph.function for ph in placeholders if ph.function is not None)
    return Template(source, frozenset(ordered), functions, tuple(parts), ordered)


def _templates(source: TemplateSource, field: str) -> list[Template]:
    sources = [source] if isinstance(source, str) else list(source)
    if not sources:
        raise TemplateError(f"{field}: no template given")
    try:
        return [Template.parse(item) for item in sources]
    except TemplateError as exc:
        raise TemplateError(f"{field}: {exc.message}") from None


def references_of(source: TemplateSource) -> frozenset[str]:
    """Return every name the template (or any of its alternatives) refers to.

    Raises:
        TemplateError: a template cannot be parsed.
    """
    sources = [source] if isinstance(source, str) else source
    return frozenset(name for item in sources for name in Template.parse(item).references)


def _select(source: TemplateSource, values: Values, field: str, *, allow_empty: bool = False) -> Template:
    """Return the first template whose references all have a value (``allow_empty``: an empty one counts)."""
    templates = _templates(source, field)
    missing: dict[str, None] = {}
    for template in templates:
        absent = [
            name for name in template._ordered if values.get(name) is None or (not allow_empty and not values[name])
        ]
        if not absent:
            return template
        missing.update(dict.fromkeys(absent))
    if isinstance(source, str):
        raise TemplateError(f"{field}: needs {next(iter(missing))}, which has no value")
    raise TemplateError(f"{field}: no alternative can be rendered; missing {', '.join(missing)}")


def _evaluate(placeholder: _Placeholder, values: Values, now: Clock, field: str) -> str:
    if placeholder.function == "uuid":
        return str(uuid.uuid4())
    text = "".join(arg[1:] if arg.startswith("'") else values.get(arg) or "" for arg in placeholder.args)
    if placeholder.function is None:
        return text
    if placeholder.function == "now":
        return _format_now(placeholder, now())
    try:
        return base64.b64encode(text.encode()).decode("ascii")
    except UnicodeEncodeError:
        raise TemplateError(f"{field}: a value in {{{placeholder.expr}}} is not valid text") from None


def _format_now(placeholder: _Placeholder, moment: datetime) -> str:
    kind, fmt, offset_ms = (arg[1:] for arg in placeholder.args)
    moment = moment + timedelta(milliseconds=int(offset_ms))
    if kind == "unix":
        return str((moment - _EPOCH) // timedelta(seconds=1))
    if kind == "unix_ms":
        return str((moment - _EPOCH) // timedelta(milliseconds=1))
    if kind == "strftime":
        return moment.astimezone(UTC).strftime(fmt)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix_time_template(source: str) -> bool:
    """Whether ``source`` is exactly one ``{now(unix…)}`` or ``{now(unix_ms…)}`` placeholder (a number, not text).

    A JWT claim written that way is sent as a JSON number, as ``iat``/``exp`` must be.

    Raises:
        TemplateError: the template cannot be parsed.
    """
    parts = Template.parse(source)._parts
    return (
        len(parts) == 1
        and isinstance(parts[0], _Placeholder)
        and parts[0].function == "now"
        and parts[0].args[0] in ("'unix", "'unix_ms")
    )


def _render_parts(template: Template, values: Values, field: str, clock: Clock | None) -> list[str]:
    """Return the template's parts with each placeholder evaluated; ``clock`` is read at most once."""

    read: list[datetime] = []  # a plain memo: a functools.cache made per call costs more than most renders

    def now() -> datetime:
        if not read:
            moment = clock() if clock is not None else datetime.now(UTC)
            if moment.tzinfo is None:
                raise ValueError("the clock returned a naive datetime; it must be timezone-aware")
            read.append(moment)
        return read[0]

    return [_evaluate(part, values, now, field) if isinstance(part, _Placeholder) else part for part in template._parts]


def render_text(
    source: TemplateSource, values: Values, *, field: str, clock: Clock | None = None, allow_empty: bool = False
) -> str:
    """Substitute the values as they are; the caller encodes the result for its destination.

    Args:
        source: the template, or a list of alternatives (the first with all references set wins).
        values: reference name (``serverName``, ``credentials.instance_url``, ``token``) to value;
            an absent, None or empty value is "not set".
        field: the spec field path, used in error messages.
        clock: returns the current, timezone-aware time for ``now()``; defaults to the system clock.
        allow_empty: an empty value is set (a signature's canonical string over an empty body or query).

    Raises:
        TemplateError: the template is malformed or a reference has no value.
    """
    return "".join(_render_parts(_select(source, values, field, allow_empty=allow_empty), values, field, clock))


def render_header(source: TemplateSource, values: Values, *, field: str, clock: Clock | None = None) -> str:
    """Render a header value like ``render_text``, refusing CR, LF, NUL and every other control but HTAB.

    Raises:
        UnsafeValueError: a substituted value (or the result) contains a control character or non-ASCII.
        TemplateError: the template is malformed or a reference has no value.
    """
    template = _select(source, values, field)
    rendered = _render_parts(template, values, field, clock)
    for part, value in zip(template._parts, rendered, strict=True):
        if isinstance(part, _Placeholder) and _BAD_HEADER_CHARS & set(value):
            raise UnsafeValueError(
                f"{field}: the value of {part.expr} contains a line break, NUL or other control character, "
                "which cannot go in a header"
            )
        if isinstance(part, _Placeholder) and not value.isascii():
            raise UnsafeValueError(
                f"{field}: the value of {part.expr} is not ASCII, which HTTP headers cannot carry reliably"
            )
    result = "".join(rendered)
    if _BAD_HEADER_CHARS & set(result):
        raise UnsafeValueError(f"{field}: the header contains a line break, NUL or other control character")
    if not result.isascii():
        raise UnsafeValueError(f"{field}: the header is not ASCII, which HTTP headers cannot carry reliably")
    return result


@functools.lru_cache(maxsize=1024)
def _plan(template: Template) -> tuple[tuple[str, ...], tuple[tuple[bool, str], ...]]:
    """Return each part's URL context ("" for literals) and the problems no value can fix (unsafe?, why).

    A state machine over the literal characters, with each placeholder as one sentinel character.
    """
    parts = template._parts
    stream = [c for i, part in enumerate(parts) for c in ((i,) if isinstance(part, _Placeholder) else part)]
    contexts = [""] * len(parts)
    problems: list[tuple[bool, str]] = []

    def put(item: int, context: str) -> None:
        contexts[item] = context
        if context in ("scheme", "user info"):
            problems.append((True, f"{_name(parts[item])} is in the URL {context}, where no value may go"))

    pos = 0
    if stream and isinstance(stream[0], int):
        put(0, "whole")
        pos = 1
        if stream[1:] and stream[1] not in ("/", "?", "#"):
            problems.append((False, f"{_name(parts[0])} supplies a whole URL: follow it with '/', '?' or '#'"))
    else:
        colon = stream.index(":") if ":" in stream else len(stream)
        scheme = "".join(item for item in stream[:colon] if isinstance(item, str))
        if stream[colon + 1 : colon + 3] != ["/", "/"] or not re.fullmatch(r"[A-Za-z0-9+.-]*", scheme):
            return tuple(contexts), ((False, "not an absolute URL: start it with https://"),)
        for item in stream[:colon]:
            if isinstance(item, int):
                put(item, "scheme")
        if scheme.lower() not in ("http", "https"):
            problems.append((False, f"the URL scheme must be http or https, not {scheme!r}"))
        pos = end = colon + 3
        while end < len(stream) and stream[end] not in ("/", "?", "#"):
            end += 1
        if end == pos:
            problems.append((False, "the URL has no host"))
        at = max((k for k in range(pos, end) if stream[k] == "@"), default=-1)
        state, bracket = "host", False
        for k in range(pos, end):
            item = stream[k]
            if isinstance(item, int):
                put(item, "user info" if k < at else state)
            elif k > at:
                bracket = (bracket or item == "[") and item != "]"
                state = "port" if item == ":" and not bracket else state
        pos = end
    state = "path"
    for item in stream[pos:]:
        if isinstance(item, int):
            put(item, state)
        elif item == "?" and state == "path":
            state = "query"
        elif item == "#":
            state = "fragment"
    return tuple(contexts), tuple(problems)


def _name(part: str | _Placeholder) -> str:
    return part.expr if isinstance(part, _Placeholder) else ""


def _url_problems(template: Template, field: str, whole_url_names: Collection[str]) -> list[TemplateError]:
    contexts, problems = _plan(template)
    first = template._parts[0]
    errors: list[TemplateError] = [
        (UnsafeValueError if unsafe else TemplateError)(f"{field}: {why}") for unsafe, why in problems
    ]
    if contexts[0] == "whole" and isinstance(first, _Placeholder):
        name = first.expr
        if first.function is not None or not (
            name in whole_url_names or (name.startswith("credentials.") and "credentials.*" in whole_url_names)
        ):
            message = f"{field}: {name} cannot supply a whole URL; declare it with format: url"
            errors.insert(0, UnsafeValueError(message))
    return errors


def reference_contexts(source: TemplateSource) -> dict[str, frozenset[str]]:
    """Where each reference lands in a URL template (any alternative): ``whole``, ``scheme``, ``user info``,
    ``host``, ``port``, ``path``, ``query`` or ``fragment``.

    Raises:
        TemplateError: a template cannot be parsed.
    """
    found: dict[str, set[str]] = {}
    for template in _templates(source, "url"):
        contexts, _ = _plan(template)
        for part, context in zip(template._parts, contexts, strict=True):
            if isinstance(part, _Placeholder) and context:
                for name in part.names:
                    found.setdefault(name, set()).add(context)
    return {name: frozenset(where) for name, where in found.items()}


def check_url_template(source: TemplateSource, *, field: str, whole_url_names: Collection[str] = ()) -> list[str]:
    """Check a URL template before any values exist, e.g. when an integration is saved.

    Args:
        source: the template, or a list of alternatives (each is checked).
        field: the spec field path, used as the prefix of every message.
        whole_url_names: references that may supply a whole URL (``format: url`` parameters,
            credential fields); ``"credentials.*"`` admits every credential field.

    Returns:
        One message per problem; empty when the template is fine.

    Raises:
        TemplateError: a template cannot be parsed.
    """
    messages = (str(error) for t in _templates(source, field) for error in _url_problems(t, field, whole_url_names))
    return list(dict.fromkeys(messages))


_DNS_LABEL = re.compile(r"[A-Za-z0-9-]{1,63}")


def dns_name_problem(host: str) -> str | None:
    """Why ``host`` is not a DNS name (RFC 1123), or None when it is.

    Labels of 1 to 63 letters, digits and ``-``, not starting or ending with ``-``, separated by
    single dots, 253 characters in all. Checked label by label, without backtracking.
    """
    if not host or len(host) > 253:
        return "must be 1 to 253 characters"
    for label in host.split("."):
        if not label:
            return "has an empty label (two dots in a row, or a dot at an end)"
        if not _DNS_LABEL.fullmatch(label):
            return "has a label that is not 1 to 63 letters, digits or '-'"
        if label[0] == "-" or label[-1] == "-":
            return "has a label that starts or ends with '-'"
    return None


def dot_segment(path: str) -> bool:
    """Whether a URL path has a ``.`` or ``..`` segment, percent-encoded or not (``%2e%2E``)."""
    return any(unquote(segment) in (".", "..") for segment in path.split("/"))


def render_path(source: str, values: Values, *, field: str, clock: Clock | None = None) -> str:
    """Render a path to append to a base URL (``test.path``): each value percent-encoded as one segment part.

    A value cannot add segments, a query or a fragment (``/``, ``?``, ``#`` are encoded), and no
    segment of the result may be ``.`` or ``..``, which would climb out of the base URL.

    Raises:
        UnsafeValueError: a value is ``.`` or ``..``, or the result has a dot segment.
        TemplateError: the template is malformed or a reference has no value.
    """
    template = _select(source, values, field)
    for name in template.references:
        if values.get(name) in (".", ".."):
            raise UnsafeValueError(f"{field}: the value of {name} is {values[name]!r}, which cannot be a path segment")
    encoded = {name: quote(value, safe="") if value is not None else None for name, value in values.items()}
    rendered = render_text(source, encoded, field=field, clock=clock)
    if dot_segment(rendered.partition("?")[0].partition("#")[0]):
        raise UnsafeValueError(f"{field}: the path has a '.' or '..' segment")
    return rendered


def _split(url: str) -> SplitResult | None:
    """``urlsplit`` that returns None where it would raise (bad IPv6 brackets, bad port)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        return None
    return parts


def _whole_url(value: str, name: str, field: str, allow_http: Callable[[str], bool] | None) -> str:
    """Return ``value`` if it is a safe absolute URL to fill a whole-URL placeholder."""

    def refuse(reason: str) -> UnsafeValueError:
        return UnsafeValueError(f"{field}: the value of {name} {reason}")

    if not value.isascii() or any(char <= " " or char in "\x7f\\" for char in value):
        raise refuse("must be a plain ASCII URL without spaces, control characters or backslashes")
    parts = _split(value)
    if parts is None:
        raise refuse("is not a valid URL (check the host and port)")
    if "@" in parts.netloc:
        raise refuse("must not contain user info")
    if "?" in value or "#" in value:
        raise refuse("must not contain a query or a fragment")
    netloc = parts.netloc
    host = netloc[: netloc.find("]") + 1] if netloc.startswith("[") else netloc.partition(":")[0]
    if not parts.hostname or not _WHOLE_HOST.fullmatch(host):
        raise refuse("must be an absolute URL with a valid host name")
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http is not None and allow_http(parts.hostname)):
        raise refuse("must be an https URL")
    return value


def _encode(value: str, context: str, name: str, field: str) -> str:
    if context == "host" and not _HOST_PART.fullmatch(value):
        raise UnsafeValueError(
            f"{field}: the value of {name} is not a valid host name part (letters, digits, '-' and '.' only)"
        )
    if context == "host" and (".." in value or len(value) > 253):
        raise UnsafeValueError(f"{field}: the value of {name} is not a valid host name (an empty label, or too long)")
    if context == "port" and not (value.isascii() and value.isdigit()):
        raise UnsafeValueError(f"{field}: the value of {name} is not a port number (digits only)")
    if context in ("host", "port"):
        return value
    if context == "path" and value in (".", ".."):
        # Encoded or not, '.' and '..' are removed by URL normalization (yarl, servers): `..` climbs out.
        raise UnsafeValueError(f"{field}: the value of {name} is {value!r}, which cannot be a URL path segment")
    if context == "path" and set(value) == {"."}:
        return "%2E" * len(value)
    try:
        return quote(value, safe="")
    except UnicodeEncodeError:
        raise TemplateError(f"{field}: the value of {name} is not valid text") from None


def render_url(
    source: TemplateSource,
    values: Values,
    *,
    field: str,
    whole_url_names: Collection[str] = (),
    allow_http: Callable[[str], bool] | None = None,
    clock: Clock | None = None,
) -> str:
    """Render a URL, encoding each value for where it lands so that no value moves the scheme, host or port.

    Host and port values must be host characters and digits; path, query and fragment values are
    percent-encoded (``/``, ``?``, ``#`` included). A placeholder at the very start supplies the whole
    base URL; it must be one of ``whole_url_names`` and its value an ``https`` URL (``http`` only when
    ``allow_http(host)`` says so) without user info, query or fragment.

    ```
    render_url("https://{server}.example.com/v1/{id}", {"server": "eu", "id": "a/b"}, field="token_url")
    # 'https://eu.example.com/v1/a%2Fb'
    ```

    Raises:
        UnsafeValueError: a value is not allowed where it lands.
        TemplateError: the template is malformed, is not an http(s) URL, or a reference has no value.
    """
    template = _select(source, values, field)
    problems = _url_problems(template, field, whole_url_names)
    if problems:
        raise problems[0]
    contexts, _ = _plan(template)
    rendered = _render_parts(template, values, field, clock)
    pieces: list[str] = []
    for index, (part, value, context) in enumerate(zip(template._parts, rendered, contexts, strict=True)):
        if not isinstance(part, _Placeholder):
            pieces.append(value)
        elif context == "whole":
            value = _whole_url(value, part.expr, field, allow_http)
            after = rendered[index + 1] if index + 1 < len(rendered) else ""
            pieces.append(value[:-1] if value.endswith("/") and after.startswith("/") else value)
        else:
            pieces.append(_encode(value, context, part.expr, field))
    result = "".join(pieces)
    problem = _rendered_url_problem(result)
    if problem is not None:
        unsafe, why = problem
        raise (UnsafeValueError if unsafe else TemplateError)(f"{field}: {why}")
    return result


@functools.lru_cache(maxsize=1024)
def _rendered_url_problem(url: str) -> tuple[bool, str] | None:
    """What is wrong with a rendered URL (unsafe?, why), or None; kept per URL (a spec's endpoint repeats)."""
    parts = _split(url)
    if parts is None:
        return True, "the rendered URL has an invalid host or port"
    if not parts.hostname or parts.scheme.lower() not in ("http", "https"):
        return False, "the rendered template is not an http(s) URL with a host"
    problem = None if parts.netloc.startswith("[") else dns_name_problem(parts.hostname)
    if problem is not None:
        return True, f"the rendered host name {problem}"
    if dot_segment(parts.path):
        return True, "the rendered URL path has a '.' or '..' segment"
    return None

"""Mint JWTs: load a signing key, render a :class:`~authbridge.spec.models.JwtTemplate`, sign it (joserfc).

Shared by every auth style that signs a JWT: the self-signed token (``type: jwt``), the JWT bearer
grant (RFC 7523 §2.1), ``private_key_jwt`` client assertions (§2.2) and multi-step token requests
(a GitHub App JWT). Sans-IO: a key and values in, a compact JWT out.

```
minted = mint_jwt(ctx, template, field="auth.assertion", claims={"aud": token_url})
minted.token        # "eyJ..."
minted.expires_at   # when its exp says it expires
```

No message of this module carries key material: errors name the field and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import re
import threading
import typing
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc import jwt as _jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from authbridge.auth.base import AuthContext
from authbridge.errors import SigningKeyError
from authbridge.spec.models import MAX_KEY_LENGTH, JwtTemplate
from authbridge.spec.templating import render_text, unix_time_template

__all__ = ["MAX_KEY_CHARS", "MintedJwt", "SigningKey", "load_signing_key", "mint_jwt", "sign", "signing_key"]

#: The longest key text read.
MAX_KEY_CHARS = MAX_KEY_LENGTH
_MIN_RSA_BITS, _MAX_RSA_BITS = 2048, 8192
#: The shortest HMAC secret (RFC 7518 §3.2 wants the hash size; 112 bits is NIST's floor, joserfc's too).
_MIN_HMAC_BYTES = 14
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_FAMILY = {"RS": "an RSA", "PS": "an RSA", "ES": "an EC", "Ed": "an Ed25519/Ed448", "HS": "a shared-secret"}

Key = RSAKey | ECKey | OKPKey | OctKey
Claims = dict[str, typing.Any]


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """A private key ready to sign with ``alg``.

    ``kid`` is the key's own id (a key file's ``private_key_id``, a JWK's ``kid``), the default of
    the JWT header's. ``key_file`` holds the other text fields of a service-account key file
    (``client_email``, ``token_uri``...), never ``private_key``.
    """

    alg: str
    key: Key = dataclasses.field(repr=False)
    kid: str | None = None
    key_file: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class MintedJwt:
    """A signed JWT and its times. The repr shows neither the token nor the claims."""

    token: str = dataclasses.field(repr=False)
    issued_at: datetime
    expires_at: datetime | None
    claims: Mapping[str, typing.Any] = dataclasses.field(default_factory=dict, repr=False)


def _refuse(field: str, why: str) -> SigningKeyError:
    return SigningKeyError(f"{field}: {why}")


def _family(alg: str) -> str:
    return _FAMILY[alg[:2]]


def _hmac_key(text: str, alg: str, encoding: str, field: str) -> SigningKey:
    try:
        if encoding == "hex":
            raw = bytes.fromhex(text.strip())
        elif encoding == "base64":
            raw = base64.b64decode(text.strip(), validate=True)
        elif encoding == "base64url":
            stripped = text.strip().rstrip("=")
            raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
        else:
            raw = text.encode("utf-8")
    except (ValueError, binascii.Error):
        raise _refuse(field, f"the shared secret is not valid {encoding}") from None
    if len(raw) < _MIN_HMAC_BYTES:
        raise _refuse(field, f"the shared secret is shorter than {_MIN_HMAC_BYTES} bytes; {alg} needs a longer one")
    return SigningKey(alg, OctKey.import_key(raw))


_PEM = re.compile(r"(-----BEGIN [A-Z0-9 ]{1,40}-----)(.*?)(-----END [A-Z0-9 ]{1,40}-----)", re.DOTALL)


def _normalize_pem(text: str) -> str:
    """A PEM as pasted: literal ``\\n`` (copied out of JSON) or no line breaks (a password input) is rewrapped."""
    match = _PEM.search(text.replace("\\n", "\n"))
    if match is None:
        return text
    head, body, foot = match.groups()
    lines = [line.strip() for line in body.strip().splitlines()]
    headers = [line for line in lines if ":" in line]  # Proc-Type and DEK-Info of legacy encrypted keys
    data = "".join(line for line in lines if ":" not in line).replace(" ", "")
    wrapped = [data[i : i + 64] for i in range(0, len(data), 64)]
    return "\n".join([head, *headers, *([""] if headers else []), *wrapped, foot, ""])


def _from_pem(pem: str, alg: str, field: str) -> Key:
    if "PRIVATE KEY-----" not in pem:
        if "PUBLIC KEY-----" in pem or "CERTIFICATE-----" in pem:
            raise _refuse(field, "is a public key or certificate; signing needs the private key")
        raise _refuse(field, "is not a PEM private key (-----BEGIN PRIVATE KEY-----)")
    if "ENCRYPTED PRIVATE KEY-----" in pem or "Proc-Type: 4,ENCRYPTED" in pem:
        raise _refuse(field, "is encrypted with a passphrase; give the unencrypted private key")
    try:
        native = load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise _refuse(
            field, "is not a readable PEM private key (damaged, truncated or of an unsupported kind)"
        ) from None
    return _wrap(native, alg, field)


def _wrap(native: object, alg: str, field: str) -> Key:
    """Check that the key fits the algorithm and wrap it for joserfc."""
    prefix = alg[:2]
    if isinstance(native, rsa.RSAPrivateKey) and prefix in ("RS", "PS"):
        if not _MIN_RSA_BITS <= native.key_size <= _MAX_RSA_BITS:
            raise _refuse(
                field, f"the RSA key has {native.key_size} bits; {_MIN_RSA_BITS} to {_MAX_RSA_BITS} are accepted"
            )
        return RSAKey.import_key(native)
    if isinstance(native, ec.EllipticCurvePrivateKey) and prefix == "ES":
        key = ECKey.import_key(native)
        if key.curve_name != _CURVES[alg]:
            raise _refuse(field, f"the EC key is on {key.curve_name}; {alg} needs {_CURVES[alg]}")
        return key
    if isinstance(native, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) and prefix == "Ed":
        if alg == "Ed25519" and not isinstance(native, ed25519.Ed25519PrivateKey):
            raise _refuse(field, "the key is an Ed448 key; Ed25519 needs an Ed25519 key")
        return OKPKey.import_key(native)
    kind = {
        rsa.RSAPrivateKey: "an RSA",
        ec.EllipticCurvePrivateKey: "an EC",
        ed25519.Ed25519PrivateKey: "an Ed25519",
        ed448.Ed448PrivateKey: "an Ed448",
    }
    found = next((name for cls, name in kind.items() if isinstance(native, cls)), "another kind of")
    raise _refuse(field, f"the key is {found} key; {alg} needs {_family(alg)} key")


def _from_jwk(data: Mapping[str, typing.Any], alg: str, field: str) -> SigningKey:
    kty = data.get("kty")
    classes: dict[str, type[Key]] = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey, "oct": OctKey}
    if kty not in classes:
        raise _refuse(field, "the JWK has no known kty (RSA, EC, OKP or oct)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            key = classes[kty].import_key(dict(data))
    except (JoseError, ValueError, TypeError, KeyError):
        raise _refuse(field, f"the {kty} JWK cannot be read (a member is missing or malformed)") from None
    if isinstance(key, OctKey):
        if not alg.startswith("HS"):
            raise _refuse(field, f"the key is a shared-secret (oct) JWK; {alg} needs {_family(alg)} key")
        if len(key.raw_value) < _MIN_HMAC_BYTES:
            raise _refuse(field, f"the shared secret is shorter than {_MIN_HMAC_BYTES} bytes")
        return SigningKey(alg, key, _text(data.get("kid")))
    if not key.is_private:
        raise _refuse(field, "the JWK is a public key; signing needs the private key (its d member)")
    return SigningKey(alg, _wrap(key.private_key, alg, field), _text(data.get("kid")))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


#: Keys already read, by a digest of their text: loading an RSA key checks it (over 100 ms), signing takes 1 ms.
_LOADED: collections.OrderedDict[tuple[bytes, str, str], SigningKey] = collections.OrderedDict()
_LOADED_MAX = 256
_LOADED_LOCK = threading.Lock()


def load_signing_key(text: str, alg: str, *, field: str, encoding: str = "text") -> SigningKey:
    """Read a private key for ``alg`` from text: PEM, a JWK, a service-account key file, or an HMAC secret.

    A key file is a JSON object with ``private_key`` (a PEM), as Google and others issue them; its
    ``private_key_id`` becomes the ``kid`` and its other text fields ``key_file``. For ``HS*``,
    plain text is the shared secret (``encoding`` ``hex``, ``base64`` or ``base64url`` decodes it
    first) and a JSON ``oct`` JWK is read too.

    Raises:
        SigningKeyError: the key is empty, too large, malformed, public, encrypted, or does not fit
            ``alg`` (an EC key for RS256, a P-384 key for ES256, an RSA key under 2048 bits).
            The message names ``field``, never the key.
    """
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    with _LOADED_LOCK:
        cached = _LOADED.get((digest, alg, encoding))
        if cached is not None:
            _LOADED.move_to_end((digest, alg, encoding))
            return cached
    loaded = _load(text, alg, field, encoding)
    with _LOADED_LOCK:
        _LOADED[(digest, alg, encoding)] = loaded
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
    return loaded


def _load(text: str, alg: str, field: str, encoding: str) -> SigningKey:
    if not text or not text.strip():
        raise _refuse(field, "the key is empty")
    if len(text) > MAX_KEY_CHARS:
        raise _refuse(field, f"the key is longer than {MAX_KEY_CHARS} characters; no signing key is that large")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError):
            raise _refuse(field, "starts with '{' but is not valid JSON (a key file or JWK was expected)") from None
        if "private_key" in data:
            pem = data["private_key"]
            if not isinstance(pem, str):
                raise _refuse(field, "the key file's private_key is not text")
            if alg.startswith("HS"):
                raise _refuse(field, f"a key file holds a private key; {alg} needs a shared secret")
            others = {name: value for name, value in data.items() if isinstance(value, str) and name != "private_key"}
            key = _from_pem(_normalize_pem(pem), alg, field)
            return SigningKey(alg, key, _text(data.get("private_key_id")), others)
        if "kty" in data:
            return _from_jwk(data, alg, field)
        raise _refuse(field, "the JSON has neither private_key (a key file) nor kty (a JWK)")
    if alg.startswith("HS"):
        if "PRIVATE KEY-----" in stripped:
            raise _refuse(field, f"is a PEM private key; {alg} needs a shared secret")
        return _hmac_key(text, alg, encoding, field)
    if encoding != "text":
        raise _refuse(field, f"key_encoding {encoding} is only for shared secrets")
    return SigningKey(alg, _from_pem(_normalize_pem(stripped), alg, field))


def _values(ctx: AuthContext, extra: Mapping[str, str | None] | None) -> dict[str, str | None]:
    values = ctx.values()
    values.update(extra or {})
    return values


def signing_key(
    ctx: AuthContext, template: JwtTemplate, *, field: str, values: Mapping[str, str | None] | None = None
) -> SigningKey:
    """Render ``template.key`` (the connection's values, then ``values``) and load it for ``template.alg``.

    Raises:
        TemplateError: the key template refers to something without a value.
        SigningKeyError: the rendered key cannot sign (see :func:`load_signing_key`).
    """
    text = render_text(template.key, _values(ctx, values), field=f"{field}.key", clock=ctx.clock)
    return load_signing_key(text, template.alg, field=f"{field}.key", encoding=template.key_encoding)


def _render(value: typing.Any, values: Mapping[str, str | None], field: str, ctx: AuthContext) -> typing.Any:
    if isinstance(value, str):
        rendered = render_text(value, values, field=field, clock=ctx.clock)
        return int(rendered) if unix_time_template(value) else rendered
    if isinstance(value, list):
        return [_render(item, values, f"{field}.{index}", ctx) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {name: _render(item, values, f"{field}.{name}", ctx) for name, item in value.items()}
    return value


def mint_jwt(
    ctx: AuthContext,
    template: JwtTemplate,
    *,
    field: str,
    values: Mapping[str, str | None] | None = None,
    claims: Mapping[str, typing.Any] | None = None,
    header: Mapping[str, typing.Any] | None = None,
    key: SigningKey | None = None,
) -> MintedJwt:
    """Sign a JWT from ``template`` at the context's clock.

    The claims are, each overriding the one before: ``claims`` (the caller's defaults, such as
    RFC 7523's ``iss``, ``sub``, ``aud`` and ``jti``), ``iat`` (now) and ``exp`` (now + ``ttl``),
    then the template's own, rendered. The header is ``typ: JWT``, ``alg``, the ``kid`` (the
    template's, else the key's), then ``header`` and the template's. Template strings see the
    connection's values and ``values`` (which win); a string that is exactly one
    ``{now(unix…)}`` is written as a number.

    Args:
        ctx: the connection (its values and clock).
        template: the JWT to sign.
        field: the spec path of ``template`` (``auth.jwt``), for messages.
        values: template values beyond the connection's (captured fields of an earlier step).
        claims: default claims, under the template's.
        header: default header fields, under the template's.
        key: an already loaded key (else ``template.key`` is rendered and loaded).

    Raises:
        TemplateError: a template refers to something without a value.
        SigningKeyError: the key cannot sign with ``template.alg``.
    """
    merged = _values(ctx, values)
    signer = key if key is not None else signing_key(ctx, template, field=field, values=values)
    now = ctx.clock() if ctx.clock is not None else datetime.now(UTC)
    issued = int(now.timestamp())
    body: Claims = dict(claims or {})
    body["iat"] = issued
    body["exp"] = issued + int(template.ttl.total_seconds())
    body.update(_render(template.claims, merged, f"{field}.claims", ctx))
    head: Claims = {"typ": "JWT"}
    kid = render_text(template.kid, merged, field=f"{field}.kid", clock=ctx.clock) if template.kid else signer.kid
    if kid:
        head["kid"] = kid
    head.update(header or {})
    head.update(_render(template.header, merged, f"{field}.header", ctx))
    token = sign(dataclasses.replace(signer, alg=template.alg), head, body, field=f"{field}.key")
    exp = body.get("exp")
    expires = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
    return MintedJwt(token, datetime.fromtimestamp(issued, UTC), expires, body)


def sign(key: SigningKey, header: Mapping[str, typing.Any], claims: Mapping[str, typing.Any], *, field: str) -> str:
    """Sign ``claims`` with ``key`` as a compact JWS; the header gets ``typ: JWT`` (unless set) and ``alg``.

    Raises:
        SigningKeyError: the key cannot sign with its algorithm (the message names ``field``).
    """
    head = {"typ": "JWT", **header, "alg": key.alg}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # EdDSA is deprecated by RFC 9864 but widely expected
            return str(_jwt.encode(head, dict(claims), key.key, algorithms=[key.alg]))
    except (JoseError, ValueError, TypeError):
        raise _refuse(field, f"the key cannot sign with {key.alg}") from None

"""Minting JWTs: each algorithm's keys load and sign (verified by joserfc); bad keys fail clearly, leaking nothing."""

from __future__ import annotations

import base64
import functools
import json
import typing
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from authbridge.auth import AuthContext
from authbridge.auth.jwt import MAX_KEY_CHARS, load_signing_key, mint_jwt, signing_key
from authbridge.errors import SigningKeyError, TemplateError
from authbridge.spec import Integration
from authbridge.spec.models import JwtTemplate

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HMAC_SECRET = "a-shared-secret-of-32-characters"


def pem(key: PrivateKeyTypes, encryption: serialization.KeySerializationEncryption | None = None) -> str:
    encoding, form = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, form, encryption or serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    encoding, form = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(encoding, form).decode()


@functools.cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, bits)


@functools.cache
def ec_key(curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    curves: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    return ec.generate_private_key(curves[curve])


@functools.cache
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def ctx(**parameters: str) -> AuthContext:
    spec = Integration.model_validate({"key": "acme", "name": "Acme"})
    return AuthContext(spec, parameters=parameters, clock=lambda: NOW)


def verify(token: str, key: typing.Any, alg: str) -> jwt.Token:
    return jwt.decode(token, key, algorithms=[alg])


@pytest.mark.parametrize(
    ("alg", "native", "verifier"),
    [
        ("RS256", lambda: rsa_key(), lambda k: RSAKey.import_key(k.public_key())),
        ("RS384", lambda: rsa_key(), lambda k: RSAKey.import_key(k.public_key())),
        ("RS512", lambda: rsa_key(), lambda k: RSAKey.import_key(k.public_key())),
        ("PS256", lambda: rsa_key(), lambda k: RSAKey.import_key(k.public_key())),
        ("PS512", lambda: rsa_key(), lambda k: RSAKey.import_key(k.public_key())),
        ("ES256", lambda: ec_key("P-256"), lambda k: ECKey.import_key(k.public_key())),
        ("ES384", lambda: ec_key("P-384"), lambda k: ECKey.import_key(k.public_key())),
        ("ES512", lambda: ec_key("P-521"), lambda k: ECKey.import_key(k.public_key())),
        ("Ed25519", lambda: ed_key(), lambda k: OKPKey.import_key(k.public_key())),
    ],
)
def test_each_algorithm_signs_with_a_pem_key(alg: str, native: typing.Any, verifier: typing.Any) -> None:
    """A PEM private key of the algorithm's family signs a JWT that its public key verifies."""
    key = native()
    template = JwtTemplate(alg=alg, claims={"iss": "{issuer}"}, ttl=timedelta(minutes=20))
    minted = mint_jwt(ctx(private_key=pem(key), issuer="team-1"), template, field="auth.jwt")
    token = verify(minted.token, verifier(key), alg)
    assert token.header == {"typ": "JWT", "alg": alg}
    assert token.claims == {"iss": "team-1", "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 1200}
    assert minted.issued_at == NOW and minted.expires_at == NOW + timedelta(minutes=20)
    assert minted.token not in repr(minted) and "team-1" not in repr(minted)


def test_eddsa_signs_as_eddsa() -> None:
    """EdDSA (the name most verifiers know) signs with an Ed25519 key."""
    key = ed_key()
    minted = mint_jwt(ctx(private_key=pem(key)), JwtTemplate(alg="EdDSA"), field="auth.jwt")
    assert json.loads(base64.urlsafe_b64decode(minted.token.split(".")[0] + "=="))["alg"] == "EdDSA"
    public = ed25519.Ed25519PublicKey.from_public_bytes(
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    head, body, signature = minted.token.split(".")
    public.verify(base64.urlsafe_b64decode(signature + "=="), f"{head}.{body}".encode())


@pytest.mark.parametrize(
    ("alg", "encoding"), [("HS256", "text"), ("HS384", "hex"), ("HS512", "base64"), ("HS256", "base64url")]
)
def test_hmac_secrets_in_each_encoding(alg: str, encoding: str) -> None:
    """A shared secret as text, hex (Ghost's admin keys), base64 or base64url signs an HS* JWT."""
    raw = HMAC_SECRET.encode()
    text = {
        "text": HMAC_SECRET,
        "hex": raw.hex(),
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }[encoding]
    template = JwtTemplate(alg=alg, key="{secret}", key_encoding=encoding, kid="{key_id}")
    minted = mint_jwt(ctx(secret=text, key_id="k-1"), template, field="auth.jwt")
    assert verify(minted.token, OctKey.import_key(raw), alg).header["kid"] == "k-1"


def test_claims_and_header_keep_json_types_and_render_templates() -> None:
    """Numbers, booleans, lists and objects stay; strings render; an exact {now(unix…)} is a number."""
    template = JwtTemplate.model_validate(
        {
            "alg": "HS256",
            "key": "{secret}",
            "header": {"cty": "app", "x5u": "{url}"},
            "claims": {
                "appKey": "{app}",
                "role": 1,
                "admin": False,
                "scope": ["a", "{app}"],
                "nested": {"at": "{now(unix,+2h)}", "text": "t{now(unix)}"},
                "tokenExp": "{now(unix, +2h)}",
                "iat": "{now(unix,-30s)}",
            },
            "ttl": "1h",
        }
    )
    minted = mint_jwt(
        ctx(secret=HMAC_SECRET, app="zoom-app", url="https://k.example/"),
        template,
        field="auth.jwt",
        claims={"jti": "j-1", "role": 0},
        header={"cty": "overridden"},
    )
    token = verify(minted.token, OctKey.import_key(HMAC_SECRET.encode()), "HS256")
    t = int(NOW.timestamp())
    assert token.claims == {
        "jti": "j-1",
        "role": 1,
        "iat": t - 30,
        "exp": t + 3600,
        "appKey": "zoom-app",
        "admin": False,
        "scope": ["a", "zoom-app"],
        "nested": {"at": t + 7200, "text": f"t{t}"},
        "tokenExp": t + 7200,
    }
    assert token.header == {"typ": "JWT", "alg": "HS256", "cty": "app", "x5u": "https://k.example/"}


def test_a_key_file_gives_kid_and_fields() -> None:
    """A service-account key file: its private_key signs, private_key_id is the kid, other fields are kept."""
    key = rsa_key()
    key_file = json.dumps(
        {
            "type": "service_account",
            "private_key_id": "pkid-1",
            "private_key": pem(key),
            "client_email": "bot@project.iam.gserviceaccount.example",
            "token_uri": "https://oauth2.example/token",
            "weird": 3,
        }
    )
    loaded = signing_key(ctx(sa=key_file), JwtTemplate(key="{sa}"), field="auth.jwt")
    assert loaded.kid == "pkid-1"
    assert loaded.key_file == {
        "type": "service_account",
        "private_key_id": "pkid-1",
        "client_email": "bot@project.iam.gserviceaccount.example",
        "token_uri": "https://oauth2.example/token",
    }
    minted = mint_jwt(ctx(sa=key_file), JwtTemplate(key="{sa}"), field="auth.jwt", key=loaded)
    assert verify(minted.token, RSAKey.import_key(key.public_key()), "RS256").header["kid"] == "pkid-1"
    assert "BEGIN" not in repr(loaded) and "client_email" not in repr(loaded)


def test_jwks_sign_and_their_kid_is_the_default() -> None:
    """A private JWK (RSA, EC, oct) signs; its kid is the header's unless the template names one."""
    rsa_jwk = RSAKey.import_key(rsa_key()).as_dict(private=True, kid="rsa-kid")
    minted = mint_jwt(ctx(k=json.dumps(rsa_jwk)), JwtTemplate(key="{k}"), field="auth.jwt")
    assert verify(minted.token, RSAKey.import_key(rsa_key().public_key()), "RS256").header["kid"] == "rsa-kid"
    ec_jwk = ECKey.import_key(ec_key()).as_dict(private=True)
    minted = mint_jwt(ctx(k=json.dumps(ec_jwk)), JwtTemplate(alg="ES256", key="{k}", kid="mine"), field="auth.jwt")
    assert verify(minted.token, ECKey.import_key(ec_key().public_key()), "ES256").header["kid"] == "mine"
    oct_jwk = OctKey.import_key(HMAC_SECRET.encode()).as_dict()
    minted = mint_jwt(ctx(k=json.dumps(oct_jwk)), JwtTemplate(alg="HS256", key="{k}"), field="auth.jwt")
    assert verify(minted.token, OctKey.import_key(HMAC_SECRET.encode()), "HS256").claims["iat"] == int(NOW.timestamp())


def test_a_pem_with_escaped_newlines_is_read() -> None:
    """A PEM pasted with literal \\n (copied out of JSON) is read as the key."""
    escaped = pem(ec_key()).replace("\n", "\\n")
    minted = mint_jwt(ctx(k=escaped), JwtTemplate(alg="ES256", key="{k}"), field="auth.jwt")
    assert verify(minted.token, ECKey.import_key(ec_key().public_key()), "ES256")


def _encrypted(key: PrivateKeyTypes) -> str:
    return pem(key, serialization.BestAvailableEncryption(b"passphrase"))


BAD_KEYS: list[tuple[str, typing.Callable[[], str], str, str]] = [
    ("RS256", lambda: "", "", "the key is empty"),
    ("RS256", lambda: "x" * (MAX_KEY_CHARS + 1), "", f"longer than {MAX_KEY_CHARS} characters"),
    ("RS256", lambda: "not a key at all", "", "is not a PEM private key"),
    ("RS256", lambda: public_pem(rsa_key()), "", "is a public key or certificate"),
    ("RS256", lambda: _encrypted(ec_key()), "", "is encrypted with a passphrase"),
    ("RS256", lambda: pem(rsa_key())[:200] + "\n-----END PRIVATE KEY-----\n", "", "not a readable PEM private key"),
    ("RS256", lambda: pem(ec_key()), "", "the key is an EC key; RS256 needs an RSA key"),
    ("ES256", lambda: pem(rsa_key()), "", "the key is an RSA key; ES256 needs an EC key"),
    ("ES256", lambda: pem(ec_key("P-384")), "", "the EC key is on P-384; ES256 needs P-256"),
    ("EdDSA", lambda: pem(ec_key()), "", "the key is an EC key; EdDSA needs an Ed25519/Ed448 key"),
    ("Ed25519", lambda: pem(ed448.Ed448PrivateKey.generate()), "", "Ed25519 needs an Ed25519 key"),
    ("ES256", lambda: pem(ed_key()), "", "the key is an Ed25519 key; ES256 needs an EC key"),
    ("RS256", lambda: pem(rsa_key(1024)), "", "the RSA key has 1024 bits; 2048 to 8192 are accepted"),
    ("HS256", lambda: pem(rsa_key()), "", "is a PEM private key; HS256 needs a shared secret"),
    ("HS256", lambda: "short-secret", "", "shorter than 14 bytes"),
    ("HS256", lambda: "zz-not-hex", "hex", "not valid hex"),
    ("HS256", lambda: "***", "base64", "not valid base64"),
    ("RS256", lambda: "{not json", "", "not valid JSON"),
    ("RS256", lambda: "[1, 2]", "", "is not a PEM private key"),
    ("RS256", lambda: "{}", "", "neither private_key (a key file) nor kty"),
    ("RS256", lambda: '{"private_key": 42}', "", "the key file's private_key is not text"),
    (
        "RS256",
        lambda: '{"private_key": "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"}',
        "",
        "readable",
    ),
    ("HS256", lambda: json.dumps({"private_key": pem(rsa_key())}), "", "needs a shared secret"),
    ("RS256", lambda: '{"kty": "XYZ"}', "", "no known kty"),
    ("RS256", lambda: '{"kty": "RSA", "n": "AQAB"}', "", "the RSA JWK cannot be read"),
    ("RS256", lambda: json.dumps(RSAKey.import_key(rsa_key().public_key()).as_dict()), "", "JWK is a public key"),
    ("RS256", lambda: json.dumps(OctKey.import_key(HMAC_SECRET.encode()).as_dict()), "", "needs an RSA key"),
    ("HS256", lambda: json.dumps({"kty": "oct", "k": "c2hvcnQ"}), "", "shorter than 14 bytes"),
]


@pytest.mark.parametrize(("alg", "make", "encoding", "fragment"), BAD_KEYS)
def test_bad_keys_fail_clearly_without_the_key(
    alg: str, make: typing.Callable[[], str], encoding: str, fragment: str
) -> None:
    """Malformed, public, encrypted, wrong-kind, weak, huge keys: a SigningKeyError naming the field, never the key."""
    text = make()
    with pytest.raises(SigningKeyError) as info:
        load_signing_key(text, alg, field="parameters.private_key", encoding=encoding or "text")
    message = str(info.value)
    assert message.startswith("parameters.private_key: ")
    assert fragment in message
    for line in text.splitlines():
        if len(line) > 16 and "-----" not in line:
            assert line not in message and line not in repr(info.value)


def test_a_key_encoding_for_a_pem_key_is_refused() -> None:
    """key_encoding is for shared secrets; a PEM key with one is refused (the model refuses it first)."""
    with pytest.raises(SigningKeyError, match="only for shared secrets"):
        load_signing_key(pem(rsa_key()), "RS256", field="f", encoding="hex")


def test_a_missing_key_value_is_a_template_error_naming_it() -> None:
    """The key parameter without a value: the message names it."""
    with pytest.raises(TemplateError, match=r"auth.jwt.key: needs private_key, which has no value"):
        mint_jwt(ctx(), JwtTemplate(), field="auth.jwt")


def test_a_key_that_joserfc_refuses_at_signing_is_a_signing_key_error() -> None:
    """A loaded key used with another algorithm than it was loaded for fails as a SigningKeyError."""
    loaded = load_signing_key(pem(ec_key()), "ES256", field="f")
    with pytest.raises(SigningKeyError, match="the key cannot sign with RS256"):
        mint_jwt(ctx(), JwtTemplate(alg="RS256"), field="auth.jwt", key=loaded)


def test_the_template_model_refuses_what_it_cannot_sign() -> None:
    """alg and kid in header, a ttl out of range, a bad claim template, key_encoding for RSA: refused at load."""
    bad: list[dict[str, typing.Any]] = [
        {"header": {"alg": "none"}},
        {"header": {"kid": "k"}},
        {"ttl": "0s"},
        {"ttl": "8d"},
        {"claims": {"exp": "{now(unix,5m)}"}},
        {"claims": {"x": float("inf")}},
        {"claims": {"x": [[[[[[[[[[1]]]]]]]]]]}},
        {"key_encoding": "hex"},
        {"alg": "none"},
    ]
    for data in bad:
        with pytest.raises(ValueError):
            JwtTemplate.model_validate(data)
    assert JwtTemplate.model_validate({"claims": {"nested": {"ok": [1, "{now(unix)}"]}}}).ttl == timedelta(minutes=5)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text.replace("\n", "\\n"),  # copied out of JSON
        lambda text: text.replace("\n", ""),  # pasted into a password input
        lambda text: text.replace("\n", " "),
        lambda text: "  " + text.replace("\n", "\r\n") + "\n\n",
    ],
)
def test_a_pem_as_pasted_is_read(mangle: typing.Callable[[str], str]) -> None:
    """A PEM with escaped, missing or Windows line breaks is rewrapped and read."""
    minted = mint_jwt(ctx(k=mangle(pem(ec_key()))), JwtTemplate(alg="ES256", key="{k}"), field="auth.jwt")
    assert verify(minted.token, ECKey.import_key(ec_key().public_key()), "ES256")


def test_deeply_nested_json_is_a_clear_error() -> None:
    """A key of 16,000 nested brackets (JSON the parser recurses into) is refused, not a crash."""
    with pytest.raises(SigningKeyError, match="not valid JSON"):
        load_signing_key('{"a":' + "[" * 8000, "RS256", field="f")


def test_loaded_keys_are_reused_and_the_oldest_forgotten() -> None:
    """A key read once is not read again (RSA checks cost 100 ms); at most 256 are kept, the oldest go first."""
    first = load_signing_key(pem(rsa_key()), "RS256", field="f")
    assert load_signing_key(pem(rsa_key()), "RS256", field="other") is first
    assert load_signing_key(pem(rsa_key()), "PS256", field="f") is not first  # another algorithm, another entry
    secrets = [f"shared-secret-number-{n:04d}" for n in range(257)]
    keys = [load_signing_key(secret, "HS256", field="f") for secret in secrets]
    assert load_signing_key(secrets[-1], "HS256", field="f") is keys[-1]
    assert load_signing_key(secrets[0], "HS256", field="f") is not keys[0]

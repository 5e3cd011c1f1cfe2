"""OAuth 1.0a signing cost per proxied request, by signature method, in one run.

    .venv/bin/python benchmarks/oauth1_sign.py [--number 2000]

What the proxy adds per attempt for a signing type (``proxy/forward.py`` ``_signed``): build an
``httpx.Request`` of the attempt and call ``plugin.sign``. Each method is timed with timeit on a GET
with a query and on a form POST (whose parameters enter the signature), next to the baseline of the
same run: building the ``httpx.Request`` alone (what a signing type costs at the least). Types that
do not sign skip both (``target.signer`` is None).
"""

from __future__ import annotations

import argparse
import timeit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authbridge.auth import AuthContext, plugin_for
from authbridge.spec import Integration

URL = "https://api.example.com/1/boards/abc/cards?fields=name,idList&limit=50"
FORM = b"name=New+card&desc=Something+to+do&idList=5abbe4b7ddc1b351ef961414&pos=top"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def context(method: str) -> AuthContext:
    spec = Integration.model_validate(
        {
            "key": "bench",
            "name": "Bench",
            "request": {"base_url": "https://api.example.com/1"},
            "auth": {
                "type": "oauth1",
                "flow": "token",
                "client_id": "consumer-key",
                "client_secret": PEM.decode() if method.startswith("RSA-") else "consumer-secret",
                "signature_method": method,
            },
        }
    )
    return AuthContext(spec, access_token="token-id", inputs={"token_secret": "token-secret"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=2000)
    number = parser.parse_args().number
    plugin = plugin_for("oauth1")
    headers = {"accept": "application/json", "content-type": "application/x-www-form-urlencoded"}

    def per_call(statement: object) -> float:
        return min(timeit.repeat(statement, number=number, repeat=3)) / number * 1e6  # type: ignore[arg-type]

    base_get = per_call(lambda: httpx.Request("GET", URL, headers={"accept": "application/json"}))
    base_post = per_call(lambda: httpx.Request("POST", URL, headers=headers, content=FORM))
    print(f"baseline httpx.Request: GET {base_get:.1f} µs, form POST {base_post:.1f} µs")
    print("| method | GET µs | ratio | form POST µs | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for method in ("HMAC-SHA1", "HMAC-SHA256", "PLAINTEXT", "RSA-SHA1", "RSA-SHA256"):
        ctx = context(method)
        get = per_call(
            lambda ctx=ctx: plugin.sign(ctx, httpx.Request("GET", URL, headers={"accept": "application/json"}))
        )
        post = per_call(lambda ctx=ctx: plugin.sign(ctx, httpx.Request("POST", URL, headers=headers, content=FORM)))
        print(f"| {method} | {get:.1f} | {get / base_get:.1f}x | {post:.1f} | {post / base_post:.1f}x |")


if __name__ == "__main__":
    main()

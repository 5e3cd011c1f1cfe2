"""``/docs`` from AuthBridge's own files (air-gapped) and the proxy in the OpenAPI document.

The browser test (Swagger UI renders with every request on loopback) is in
``tests/console/test_new_user_browser.py::test_api_docs_render_without_internet``.
"""

from __future__ import annotations

import re
import typing

if typing.TYPE_CHECKING:
    from fastapi.testclient import TestClient


def test_docs_load_nothing_from_elsewhere(api_client: TestClient) -> None:
    """Every script, style and icon of /docs is served here; /redoc (a CDN page) is gone."""
    docs = api_client.get("/docs")
    assert docs.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert sources and all(s.startswith("/docs/static/") for s in sources), sources
    for source in sources:
        asset = api_client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert "SwaggerUIBundle" in api_client.get("/docs/static/swagger-ui-bundle.js").text
    assert api_client.get("/docs/static/../docs.py").status_code == 404
    assert api_client.get("/redoc").status_code == 404


def test_the_proxy_is_described_in_openapi(api_client: TestClient) -> None:
    """/proxy/{connection_id}/{path} is in the document with each method, its parameters, security and errors."""
    schema = api_client.get("/openapi.json").json()
    item = schema["paths"]["/proxy/{connection_id}/{path}"]
    assert {"get", "post", "put", "patch", "delete"} <= set(item)
    operation = item["post"]
    assert [p["name"] for p in operation["parameters"]] == ["connection_id", "path"]
    assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert {"404", "409", "502"} <= set(operation["responses"])
    assert "refresh" in operation["description"]
    assert api_client.get("/openapi.json").json() == schema  # generated once, the same every time

"""The public surface cannot grow by accident (httpx's test_exported_members habit)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import authbridge

PUBLIC = {
    "authbridge": ["AsyncAuthBridgeClient", "AuthBridgeClient", "Bridge", "__version__"],
    "authbridge.bridge": ["Bridge", "ConnectionAuth"],
    "authbridge.client": [
        "AsyncAuthBridgeClient",
        "AsyncConnectSessions",
        "AsyncConnections",
        "AsyncIntegrations",
        "AuthBridgeAPIError",
        "AuthBridgeClient",
        "ConnectSession",
        "ConnectSessions",
        "Connection",
        "ConnectionTestResult",
        "Connections",
        "DeletedConnection",
        "ImportResult",
        "Integrations",
        "Token",
    ],
    "authbridge.errors": [
        "AuthBridgeError",
        "AuthenticationError",
        "CallbackError",
        "ConnectError",
        "ConnectionStateError",
        "ConfigError",
        "ConflictError",
        "CryptoError",
        "ErrorItem",
        "IntegrationNotFound",
        "KeyRingMismatchError",
        "NotFoundError",
        "OutboundBlockedError",
        "PaginationError",
        "ParameterError",
        "PermissionDeniedError",
        "RateLimitedError",
        "SigningKeyError",
        "RefreshUnavailableError",
        "SpecError",
        "StoreError",
        "TemplateError",
        "TokenEndpointError",
        "UnsafeValueError",
        "UpstreamError",
        "WrongBrowserError",
    ],
    "authbridge.paging": ["PageRequest", "PageRule", "Pager", "aiterate", "iterate", "link_next"],
    "authbridge.spec": [
        "SECRET_MASK",
        "ApiTokenAuth",
        "AuthSpec",
        "AwsSigV4Auth",
        "BasicAuth",
        "CustomTokenAuth",
        "HmacSignatureAuth",
        "Integration",
        "NoneAuth",
        "OAuth1Auth",
        "OAuth2Auth",
        "Pace",
        "Pagination",
        "Parameter",
        "RateLimit",
        "RefreshPolicy",
        "RequestSpec",
        "TokenPlacement",
        "TokenResponse",
        "WaitFrom",
        "check_parameter_values",
        "dump_spec",
        "format_duration",
        "load_spec",
        "load_specs",
        "parse_duration",
        "spec_to_dict",
        "validate_spec",
    ],
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_members(module_name: str) -> None:
    """Each public module exports exactly the listed names, and each exists."""
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    for name in module.__all__:
        assert hasattr(module, name), name


def test_sdk_is_imported_lazily() -> None:
    """``import authbridge`` imports neither SDK module; the first use of a name does."""
    code = (
        "import sys, authbridge; "
        "assert 'authbridge.client' not in sys.modules and 'authbridge.bridge' not in sys.modules; "
        "assert authbridge.AuthBridgeClient.__module__ == 'authbridge.client'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version() -> None:
    """The package has a version."""
    assert authbridge.__version__.count(".") == 2

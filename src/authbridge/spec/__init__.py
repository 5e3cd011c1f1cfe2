"""The integration spec: models, YAML load/dump, validation and safe templating. No I/O."""

from __future__ import annotations

from authbridge.spec.durations import format_duration, parse_duration
from authbridge.spec.loader import dump_spec, load_spec, load_specs, spec_to_dict
from authbridge.spec.models import (
    SECRET_MASK,
    ApiTokenAuth,
    AuthSpec,
    AwsSigV4Auth,
    BasicAuth,
    CustomTokenAuth,
    HmacSignatureAuth,
    Integration,
    NoneAuth,
    OAuth1Auth,
    OAuth2Auth,
    Parameter,
    RefreshPolicy,
    RequestSpec,
    TokenPlacement,
    TokenResponse,
)
from authbridge.spec.validate import check_parameter_values, validate_spec

__all__ = [
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
    "Parameter",
    "RefreshPolicy",
    "RequestSpec",
    "TokenPlacement",
    "TokenResponse",
    "check_parameter_values",
    "dump_spec",
    "format_duration",
    "load_spec",
    "load_specs",
    "parse_duration",
    "spec_to_dict",
    "validate_spec",
]

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
from authbridge.spec.provider import Pace, Pagination, RateLimit, WaitFrom
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
]

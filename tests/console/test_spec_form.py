"""The integration form's conversions, without a browser (the browser tests in ``test_browser.py`` drive the form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from authbridge.console.session import Signer, safe_next
from authbridge.console.spec_form import field_errors, form_to_data, spec_to_form
from authbridge.errors import ErrorItem, SpecError
from authbridge.spec import SECRET_MASK, dump_spec, load_specs, validate_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_survives_the_form(path: Path) -> None:
    """Spec → form values → spec gives back the same spec for every example (the form covers every field used)."""
    for spec in load_specs(path.read_text()):
        values = spec_to_form(spec)
        data, problems, _rows = form_to_data(values, keep_secret=spec.client_secret is not None)
        assert problems == []
        assert dump_spec(validate_spec(data)) == dump_spec(spec)


def test_the_client_secret_is_write_only() -> None:
    """The form never holds the secret; empty means the mask (keep) when one is stored, nothing otherwise."""
    spec = load_specs((EXAMPLES[0].parent / "github.yaml").read_text())[0]
    values = spec_to_form(spec)
    assert values["oauth2.client_secret"] == ""
    assert form_to_data(values, keep_secret=True)[0]["auth"]["client_secret"] == SECRET_MASK
    assert "client_secret" not in form_to_data(values, keep_secret=False)[0]["auth"]
    values["oauth2.client_secret"] = "new-secret"
    assert form_to_data(values, keep_secret=True)[0]["auth"]["client_secret"] == "new-secret"


def test_errors_land_on_the_fields_of_the_selected_type_and_parameter_rows() -> None:
    """Spec paths map to form names: auth.* to the selected type's section, parameter indexes to their form rows."""
    values = spec_to_form(None) | {
        "key": "bad key",
        "name": "X",
        "auth.type": "custom_token",
        "parameters.count": "3",
        "parameters.0.name": "",
        "parameters.1.name": "1bad",
        "parameters.2.name": "ok",
        "request.headers": "no colon here",
    }
    data, problems, rows = form_to_data(values, keep_secret=False)
    assert rows == [1, 2]
    with pytest.raises(SpecError, match="3 problems in the integration spec") as caught:
        validate_spec(data)
    errors = field_errors([*problems, *caught.value.errors], auth_type="custom_token", rows=rows)
    assert "key" in errors and "custom_token.token_url" in errors
    assert "parameters.1.name" in errors and "request.headers" in errors
    assert field_errors([ErrorItem("somewhere.else", "odd")], auth_type="none", rows=[]) == {
        "": ["somewhere.else: odd"]
    }


def test_token_steps_are_a_json_list() -> None:
    """The custom token's steps field takes a JSON list; an object or broken JSON is an error on that field."""
    base = spec_to_form(None) | {"key": "k", "name": "K", "auth.type": "custom_token"}
    for text, expected in (('{"name": "a"}', "must be a JSON list"), ("[{", "is not valid JSON")):
        _data, problems, _rows = form_to_data(base | {"custom_token.steps": text}, keep_secret=False)
        assert [(p.path, expected in p.message) for p in problems] == [("auth.steps", True)]


def test_signer_refuses_altered_expired_and_foreign_values() -> None:
    """Sealed claims open only unaltered, unexpired and under the same secret; tokens are bound to their purpose."""
    signer = Signer(b"k" * 32)
    value = signer.seal({"sid": "s1", "sub": "admin:x", "exp": 100})
    assert signer.open(value, now=99)
    assert signer.open(value, now=100) is None
    assert Signer(b"j" * 32).open(value, now=0) is None
    assert signer.open(value.replace(".", "x.", 1), now=0) is None
    assert signer.check("csrf", "s1", signer.token("csrf", "s1"))
    assert not signer.check("csrf", "s2", signer.token("csrf", "s1"))
    assert not signer.check("login", "s1", signer.token("csrf", "s1"))
    assert "k" not in repr(signer)


def test_safe_next_keeps_only_console_paths() -> None:
    """Only paths under the console prefix are followed after sign-in."""
    assert safe_next("/console/events?type=x", prefix="/console") == "/console/events?type=x"
    for bad in (None, "", "/docs", "https://x", "//x", "/consolex", "/console\\x"):
        assert safe_next(bad, prefix="/console") == "/console/"

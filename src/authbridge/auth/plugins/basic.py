"""``basic``: a username and password entered when connecting, sent as HTTP Basic (or through ``token.template``)."""

from __future__ import annotations

from authbridge.auth.base import AuthContext
from authbridge.auth.placement import basic_authorization, standard_placement
from authbridge.auth.plugin import CREDENTIAL_INPUTS, AuthPlugin, Entered, Input
from authbridge.spec import BasicAuth, Integration
from authbridge.spec.templating import references_of

__all__ = ["BasicPlugin"]


class BasicPlugin(AuthPlugin):
    """The entered username and password are kept as inputs and placed on every request."""

    type = "basic"
    label = "Basic (username and password)"
    model = BasicAuth
    form_title = "Basic"
    form_intro = "The username and password are entered when an account is connected."
    form_sections = ("hooks", "token")

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        return (CREDENTIAL_INPUTS["username"], CREDENTIAL_INPUTS["password"])

    def entered(self, spec: Integration) -> bool:
        return True

    def begin(self, ctx: AuthContext) -> Entered:
        return Entered(inputs=dict(ctx.inputs))

    def placement(self, ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
        """``Authorization: Basic``, unless ``token.template`` uses ``{username}``/``{password}``."""
        if references_of(ctx.integration.token.template) & {"username", "password"}:
            return standard_placement(ctx, token=True)
        headers, query = standard_placement(ctx, token=False)
        headers["Authorization"] = basic_authorization(ctx)
        return headers, query

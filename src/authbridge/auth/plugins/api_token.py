"""``api_token``: a static token the user enters when connecting, placed per ``token``."""

from __future__ import annotations

from authbridge.auth.base import AuthContext
from authbridge.auth.plugin import AuthPlugin, Entered, Input
from authbridge.spec import ApiTokenAuth, Integration

__all__ = ["ApiTokenPlugin"]


class ApiTokenPlugin(AuthPlugin):
    """The entered token is the access token; nothing to refresh or revoke."""

    type = "api_token"
    label = "API Token"
    model = ApiTokenAuth
    form_title = "API Token"
    form_intro = "The token is entered when an account is connected."
    form_sections = ("hooks", "token")

    def inputs(self, spec: Integration) -> tuple[Input, ...]:
        return (Input("token", "API token", secret=True),)

    def entered(self, spec: Integration) -> bool:
        return True

    def begin(self, ctx: AuthContext) -> Entered:
        return Entered(access_token=ctx.inputs["token"])

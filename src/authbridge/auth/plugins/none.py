"""``none``: no credentials; requests carry only the base URL, headers and query of ``request``."""

from __future__ import annotations

from authbridge.auth.base import AuthContext
from authbridge.auth.placement import standard_placement
from authbridge.auth.plugin import AuthPlugin
from authbridge.spec import Integration, NoneAuth

__all__ = ["NonePlugin"]


class NonePlugin(AuthPlugin):
    """No credentials to obtain, store, refresh or place."""

    type = "none"
    label = "None"
    model = NoneAuth

    def stores_credentials(self, spec: Integration) -> bool:
        return False

    def placement(self, ctx: AuthContext) -> tuple[dict[str, str], dict[str, str]]:
        return standard_placement(ctx, token=False)

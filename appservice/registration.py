"""The appservice registration file the homeserver loads, generated from the bridge's settings."""

from __future__ import annotations

import re
import secrets
from typing import Any

from .settings import Settings


def new_registration(settings: Settings) -> dict[str, Any]:
    """A registration with fresh random tokens for the homeserver's `app_service_config_files`."""
    domain = re.escape(settings.homeserver.domain)
    appservice = settings.appservice
    return {
        "id": appservice.id,
        "url": appservice.address,
        "as_token": secrets.token_urlsafe(48),
        "hs_token": secrets.token_urlsafe(48),
        "sender_localpart": appservice.bot_username,
        "rate_limited": False,
        "namespaces": {
            "users": [
                {"exclusive": True, "regex": f"@{re.escape(appservice.bot_username)}:{domain}"},
                {"exclusive": True, "regex": f"@{re.escape(appservice.user_prefix)}.*:{domain}"},
            ],
            "aliases": [],
            "rooms": [],
        },
    }

"""The appservice registration file the homeserver loads, generated from the bridge's settings."""

from __future__ import annotations

import re
import secrets
from typing import Any

from appservice.settings import Settings


def new_registration(settings: Settings) -> dict[str, Any]:
    """A registration with fresh random tokens for the homeserver's `app_service_config_files`."""
    domain = re.escape(settings.homeserver.domain)
    appservice = settings.appservice
    registration: dict[str, Any] = {
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
    if settings.encryption.enabled:
        # End-to-bridge encryption: to-device messages and device lists in transactions
        # (MSC2409, MSC3202), and device creation without a login where the homeserver
        # uses Matrix Authentication Service (MSC4190).
        registration["receive_ephemeral"] = True
        registration["de.sorunome.msc2409.push_ephemeral"] = True
        registration["org.matrix.msc3202"] = True
        if settings.encryption.msc4190:
            registration["io.element.msc4190"] = True
    return registration

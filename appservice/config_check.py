"""What `check-config` says beyond "the file parses": a config still holding the example's
placeholders, secrets too short to sign tokens safely, a front end outside the operator's domain.

Problems make `check-config` fail; warnings are printed and leave the exit status alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from appservice.settings import Settings

# LiveKit signs every token with this secret (HS256): the server itself wants 32 characters.
MIN_SECRET_LENGTH = 32
_EXAMPLE_DOMAINS = ("example.org", "example.com", "example.net")


def problems(settings: Settings) -> list[str]:
    found = []
    livekit = settings.livekit
    for key, value in (
        ("livekit.api_key", livekit.api_key),
        ("livekit.api_secret", livekit.api_secret),
    ):
        if "CHANGE_ME" in value:
            found.append(f"{key}: still the example's placeholder")
    if len(livekit.api_secret) < MIN_SECRET_LENGTH:
        found.append(f"livekit.api_secret: shorter than {MIN_SECRET_LENGTH} characters")
    for key, host in (
        ("homeserver.domain", settings.homeserver.domain),
        ("public_url", _host(settings.public_url)),
        ("livekit.url", _host(livekit.url)),
    ):
        if _is_example(host):
            found.append(f"{key}: still the example's {host}")
    return found


def warnings(settings: Settings) -> list[str]:
    found = []
    frontend = _host(settings.livekit.frontend_url.split("{", 1)[0] or settings.public_url)
    ours = {_host(settings.public_url), settings.homeserver.domain}
    if frontend and not any(_same_site(frontend, host) for host in ours if host):
        found.append(
            f"livekit.frontend_url: each guest's token goes to {frontend}, outside your domain"
        )
    if settings.encryption.enabled and not settings.encryption.pickle_key:
        found.append("encryption.pickle_key: not set, the key every install shares is used")
    return found


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _is_example(host: str) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS)


def _same_site(host: str, ours: str) -> bool:
    if ours.replace(".", "").isdigit() or ":" in ours:
        return host == ours  # an IP address: only itself
    # visio.ministere.gouv.fr and meet.ministere.gouv.fr are one operator; *.gouv.fr is not.
    site = ".".join(ours.split(".")[-3:]) if ours.count(".") >= 2 else ours
    return host == site or host.endswith("." + site)

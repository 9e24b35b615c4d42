"""The address sign-in links name: `[studio] public_url` when set, else where the studio is actually served.

`apprentice studio` writes the address it listens on to `.studio-url` in the project folder, so that
`apprentice annotators add` in another terminal names the right port; the admin's page uses the address
its own request came to.
"""

from __future__ import annotations

from pathlib import Path

from apprentice.settings import StudioSection

SERVED_URL_FILE = ".studio-url"
FALLBACK_URL = "http://127.0.0.1:8000"
_ANY_ADDRESS = {"0.0.0.0", "::", ""}


def served_url(host: str, port: int) -> str:
    """The URL of a studio listening on host:port (a wildcard address is reached as the loopback one)."""
    shown = "127.0.0.1" if host in _ANY_ADDRESS else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # an IPv6 address in a URL
    return f"http://{shown}:{port}"


def record_served_url(project_root: Path, url: str) -> None:
    (project_root / SERVED_URL_FILE).write_text(url + "\n", encoding="utf-8")


def link_base(settings: StudioSection, *, project_root: Path | None = None, request_base: str | None = None) -> str:
    """Where annotators reach the studio: the setting, the request's own address, the served one, or port 8000."""
    if settings.public_url.strip():
        return settings.public_url.strip().rstrip("/")
    if request_base:
        return request_base.rstrip("/")
    if project_root is not None:
        recorded = project_root / SERVED_URL_FILE
        if recorded.is_file():
            text = recorded.read_text(encoding="utf-8").strip()
            if text.startswith(("http://", "https://")):
                return text.rstrip("/")
    return FALLBACK_URL

"""The address sign-in links name: `[studio] public_url` when set, else where the studio is actually served.

`apprentice studio` writes the address it listens on to `.studio-url` in the project folder, so that
`apprentice annotators add` in another terminal names the right port; the admin's page uses the address
its own request came to.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from apprentice.settings import StudioSection

SERVED_URL_FILE = ".studio-url"
FALLBACK_URL = "http://127.0.0.1:8000"
_ANY_ADDRESS = {"0.0.0.0", "::", ""}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def served_url(host: str, port: int) -> str:
    """The URL of a studio listening on host:port (a wildcard address is reached as the loopback one)."""
    shown = "127.0.0.1" if host in _ANY_ADDRESS else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # an IPv6 address in a URL
    return f"http://{shown}:{port}"


def _same_machine_other_port(setting: str, actual: str) -> bool:
    named = urlsplit(setting)
    return named.hostname in _LOOPBACK and named.port != urlsplit(actual).port


def record_served_url(project_root: Path, url: str) -> None:
    (project_root / SERVED_URL_FILE).write_text(url + "\n", encoding="utf-8")


def recorded_served_url(project_root: Path) -> str | None:
    recorded = project_root / SERVED_URL_FILE
    if not recorded.is_file():
        return None
    text = recorded.read_text(encoding="utf-8").strip()
    return text.rstrip("/") if text.startswith(("http://", "https://")) else None


def setting_disagrees(settings: StudioSection, project_root: Path) -> str | None:
    """A warning when `[studio] public_url` names this machine on another port than the studio was last served on.

    Projects made before the setting's default became empty carry `http://127.0.0.1:8000` written out.
    """
    setting = settings.public_url.strip().rstrip("/")
    served = recorded_served_url(project_root)
    if not setting or served is None or setting == served:
        return None
    if not _same_machine_other_port(setting, served):
        return None  # another host is a proxy's or a public address: the admin's choice
    return (
        f"note: the link names [studio] public_url = {setting!r}, but the studio was last served on {served}; "
        'set public_url = "" in apprentice.toml to name the served address'
    )


def link_base(settings: StudioSection, *, project_root: Path | None = None, request_base: str | None = None) -> str:
    """Where annotators reach the studio: the setting, the request's own address, the served one, or port 8000.

    A setting that names this machine on another port than the request came to is stale (see
    `setting_disagrees`): the request's address wins.
    """
    setting = settings.public_url.strip().rstrip("/")
    if setting and request_base and _same_machine_other_port(setting, request_base):
        return request_base.rstrip("/")
    if setting:
        return setting
    if request_base:
        return request_base.rstrip("/")
    served = recorded_served_url(project_root) if project_root is not None else None
    return served or FALLBACK_URL

"""Where notify URLs come from and how they are shown: the preset's ``notify``, a ``notify_from`` file and
$GOEMO_NOTIFY; apprise's check of each before anything starts; and masking, so that a token (ntfy's
``TOKEN@``, a Pushover user key, a Twilio SID) reaches no alert, error line, view or command line. The URLs
are never written into a pipeline folder, and a detached launch hands them over in its environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

from trainer.config import ConfigError, parse_override
from trainer.contract import ENV_NOTIFY

__all__ = ["notify_urls", "check_notify_urls", "mask_url", "APPRISE_MISSING", "NotifyFileError", "notify_file_urls",
           "notify_source", "notify_environment", "shown_override"]

APPRISE_MISSING = "notify needs apprise: pip install apprise"
URL_HELP = "https://github.com/caronc/apprise/wiki"

# GOEMO_NOTIFY: spaces, or commas that start another URL (a comma inside ?to=a@x,b@y stays)
_SPLIT = re.compile(r"\s+|,(?=\s*[A-Za-z][A-Za-z0-9+.\-]*://)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)(:\d+)?")
_PLAIN_QUERY_KEYS = frozenset({"cto", "rto", "method", "format", "overflow", "verify", "priority", "mode"})
_MASKED = re.compile(r"\*{4}|.{0,4}\.\.\..{0,4}")  # apprise's privacy renderings: '****', 'a...z', '...wxyz'


def notify_urls(configured: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """The preset's URLs, then those of $GOEMO_NOTIFY (space- or comma-separated), each once, in order."""
    extra = _SPLIT.split(environ.get(ENV_NOTIFY, "") or "")
    urls = (str(u).strip().strip(",").strip() for u in [*configured, *extra])
    return list(dict.fromkeys(u for u in urls if u))


NOTIFY_KEY = "pipeline.notify"
NOTIFY_FROM_DEPTH = 4  # notify_from files naming further files: a loop ends here


class NotifyFileError(ValueError):
    """A ``notify_from`` file that cannot be read: one line naming it."""


def _pipeline_table(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh).get("pipeline", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise NotifyFileError(f"{path}: {reason} (expected a TOML file with [pipeline] notify = [...])") from None
    return table if isinstance(table, dict) else {}


def _notify_from_path(value: Any, base: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def notify_file_urls(path: Path, _depth: int = 0) -> list[str]:
    """The ``[pipeline] notify`` URLs of a TOML file (a preset), then those of its own ``notify_from``.

    This is how a pipeline folder finds its URLs again on ``--resume``: they are never saved in it."""
    table = _pipeline_table(path)
    urls = table.get("notify", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise NotifyFileError(f"{path}: key 'pipeline.notify': expected a list of apprise URLs")
    nested = table.get("notify_from")
    if nested and _depth < NOTIFY_FROM_DEPTH:
        urls = [*urls, *notify_file_urls(_notify_from_path(nested, path.parent), _depth + 1)]
    return list(dict.fromkeys(urls))


def notify_source(preset_path: Path) -> str | None:
    """What a new pipeline folder's preset.toml records as ``notify_from``: the preset file itself when it
    names notify URLs (or a file of them), so that --resume reads them again; None when it names none."""
    try:
        table = _pipeline_table(preset_path)
    except NotifyFileError:
        return None
    return str(preset_path.resolve()) if table.get("notify") or table.get("notify_from") else None


def strip_notify_overrides(overrides: list[str]) -> tuple[list[str], bool]:
    """(the overrides without those that set ``pipeline.notify`` or one of its items, whether there were
    any): a launch hands the URLs to a detached process through its environment, never its command line,
    which ``ps`` shows to every user."""
    kept = []
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key != NOTIFY_KEY and not (key.startswith(NOTIFY_KEY + ".") and key[len(NOTIFY_KEY) + 1:].isdigit()):
            kept.append(item)
    return kept, len(kept) < len(overrides)


def notify_environment(urls: list[str], overrides: list[str],
                       environ: Mapping[str, str] = os.environ) -> tuple[list[str], dict[str, str]]:
    """A detached process's overrides and environment: when overrides set notify URLs, the resolved URLs
    (``urls``: the preset's, the overrides' and $GOEMO_NOTIFY's) travel in $GOEMO_NOTIFY and the command line
    says only ``pipeline.notify=[]``, so that nothing is added twice or lost."""
    kept, touched = strip_notify_overrides(overrides)
    env = dict(environ)
    if touched:
        kept.append(f"{NOTIFY_KEY}=[]")
        env[ENV_NOTIFY] = " ".join(notify_urls(urls, environ))
    return kept, env


def shown_override(item: str) -> str:
    """An override as a view shows it: a ``pipeline.notify`` value with every URL masked."""
    key, eq, value = item.partition("=")
    if key.strip() != NOTIFY_KEY or not eq:
        return item
    try:
        _, urls = parse_override(item)
    except ConfigError:
        return f"{key}=****"
    if not isinstance(urls, list):
        urls = [urls]
    return f"{key}=[{', '.join(_url_secrets(str(u))[0] for u in urls)}]"


def _mask(secret: str) -> str:
    if _MASKED.fullmatch(secret):
        return secret  # apprise masked it already
    return f"{secret[0]}...{secret[-1]}" if len(secret) >= 8 else "****"


def _url_secrets(url: str) -> tuple[str, list[str]]:
    """(the URL with its secrets masked, the secrets): the user part, passwords, token-like hosts, path
    segments and query values."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask(url), [url]
    rest, qsep, query = rest.partition("?")
    host, *path = rest.split("/")
    secrets: list[str] = []
    userinfo, at, hostport = host.rpartition("@")
    if at:
        # ntfy://TOKEN@host, pover://USER_KEY@TOKEN, twilio://SID:TOKEN@...: a user part can be the secret
        user, colon, password = userinfo.partition(":")
        secrets += [s for s in (user, password) if s]
        userinfo = (_mask(user) if user else "") + (":****" if colon else "")
    if hostport and not _HOST.fullmatch(hostport):
        secrets.append(hostport)
        hostport = _mask(hostport)
    shown = f"{scheme}://{userinfo}{at}{hostport}"
    for segment in path:
        if segment:
            secrets.append(segment)
        shown += "/" + (_mask(segment) if segment else "")
    if qsep:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            if value and key.lower() not in _PLAIN_QUERY_KEYS:
                secrets.append(value)
                value = _mask(value)
            pairs.append(f"{key}{eq}{value}")
        shown += "?" + "&".join(pairs)
    return shown, secrets


def _privacy_url(service: Any) -> str | None:
    """apprise's own rendering of a service's URL with its secrets masked, without the query of defaults."""
    try:
        shown = str(service.url(privacy=True))
    except Exception:  # noqa: BLE001 - a plugin without a privacy rendering: mask it ourselves
        return None
    return shown.partition("?")[0].rstrip("/") if "://" in shown else None


def mask_url(url: str, service: Any = None) -> str:
    """The URL as alerts and errors show it: apprise's privacy rendering when apprise reads the URL, and
    any user part, token-like host, path segment or query value it left in clear masked as well."""
    if service is None:
        try:
            import apprise
        except ImportError:
            apprise = None
        service = _instantiate(apprise, url) if apprise is not None else None
    shown = _privacy_url(service) if service is not None else None
    return _url_secrets(shown or url)[0]


def _scrub(text: str, url: str) -> str:
    """One line of a service's error text with the URL's secrets masked."""
    for secret in sorted(_url_secrets(url)[1], key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, _mask(secret))
    return " ".join(text.split())[:200].rstrip(".")


def _instantiate(apprise: Any, url: str) -> Any:
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # noqa: BLE001 - any failure means apprise does not accept the URL
        return None


def _known_scheme(scheme: str) -> bool:
    try:
        from apprise.manager_plugins import NotificationManager

        return scheme.lower() in NotificationManager()
    except Exception:  # noqa: BLE001 - an older apprise: say the generic thing
        return True


def _url_problem(apprise: Any, url: str) -> str | None:
    shown = _url_secrets(url)[0]  # apprise cannot render a URL it does not read
    scheme, sep, _ = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return (f"notify URL {shown!r}: expected an apprise URL SCHEME://... (e.g. ntfy://TOPIC, "
                f"json://HOST/PATH; see {URL_HELP})")
    if _instantiate(apprise, url) is not None:
        return None
    if not _known_scheme(scheme):
        return (f"notify URL {shown!r}: unknown service '{scheme}://' (expected an apprise service such as "
                f"ntfy, slack, mailto or json; see {URL_HELP})")
    return f"notify URL {shown!r}: apprise cannot read it as a {scheme}:// URL (see {URL_HELP} for its format)"


def check_notify_urls(urls: list[str]) -> str | None:
    """None when apprise accepts every URL, else one line naming the first bad one (masked) and what was
    expected; also a line when apprise is not installed."""
    try:
        import apprise
    except ImportError:
        return APPRISE_MISSING
    for url in urls:
        problem = _url_problem(apprise, url)
        if problem:
            return problem
    return None

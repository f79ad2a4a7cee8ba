"""Windows time zone names (what Outlook and Graph often give) to IANA zones, and back.

The table is CLDR's windowsZones mapping as shipped by the `tzlocal` package
(`tzlocal.windows_tz.win_tz`, generated from
https://github.com/unicode-org/cldr/blob/main/common/supplemental/windowsZones.xml).
Graph accepts and returns both kinds of name (a mailbox's `timeZone` can be
"Pacific Standard Time" or "America/Los_Angeles"), so every function here takes either.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

# Case-insensitive views of the CLDR table (constants, built once at import).
_WINDOWS_TO_IANA: Final = MappingProxyType({name.lower(): zone for name, zone in win_tz.items()})
_IANA_TO_WINDOWS: Final = MappingProxyType({zone.lower(): name for zone, name in tz_win.items()})

# Names Outlook uses that are in no table: its own UTC alias, and Graph's customTimeZone name.
_UTC_ALIASES: Final = frozenset({"utc", "tzone://microsoft/utc", "coordinated universal time"})


def windows_to_iana(name: str) -> str | None:
    """The IANA zone for a Windows zone name ("W. Europe Standard Time" -> "Europe/Berlin")."""
    key = name.strip().lower()
    if key in _UTC_ALIASES:
        return "UTC"
    return _WINDOWS_TO_IANA.get(key)


def iana_to_windows(name: str) -> str | None:
    """The Windows zone name for an IANA zone ("Europe/London" -> "GMT Standard Time")."""
    key = name.strip().lower()
    if key in _UTC_ALIASES or key in {"etc/utc", "etc/gmt", "gmt", "zulu", "etc/zulu"}:
        return "UTC"
    return _IANA_TO_WINDOWS.get(key)


def resolve_zone(name: str | None) -> ZoneInfo | None:
    """A ZoneInfo for a Windows or IANA name; None when empty, custom or unknown."""
    if not name or not name.strip():
        return None
    iana = windows_to_iana(name)
    if iana is not None:
        return ZoneInfo(iana)
    candidate = name.strip()
    # IANA keys are paths: refuse anything that could escape the zoneinfo directories.
    if candidate.startswith(("/", ".")) or ".." in candidate or "\\" in candidate:
        return None
    try:
        return ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def windows_name(name: str | None) -> str | None:
    """The Windows name for a Windows or IANA name (as given when already Windows)."""
    if not name or not name.strip():
        return None
    candidate = name.strip()
    if windows_to_iana(candidate) is not None:
        key = candidate.lower()
        if key in _UTC_ALIASES:
            return "UTC"
        # Give back the table's own spelling of the name.
        for windows in win_tz:
            if windows.lower() == key:
                return windows
        return candidate
    return iana_to_windows(candidate)

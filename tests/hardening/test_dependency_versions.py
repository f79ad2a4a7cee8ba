"""Dependencies carry their known security fixes.

The vulnerability databases cannot be reached from the test machines, so this test holds the
minimum versions that fix known advisories, and checks both what is installed and what the
requirements files pin. `pip-audit -r requirements.txt` (see README, Security and reliability)
checks against the live databases where the network allows.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.prereq import repo_root


@dataclass(frozen=True)
class Minimum:
    package: str
    version: str
    why: str
    required: bool = False
    """A direct dependency that must be installed; the others are checked when present."""


MINIMUMS = (
    Minimum(
        "aiohttp",
        "3.14.1",
        "the project's minimum (issue 6); earlier releases carry HTTP parser and request "
        "smuggling fixes such as CVE-2024-52304 (3.10.11) and CVE-2025-53643 (3.12.14)",
        required=True,
    ),
    Minimum(
        "PyJWT",
        "2.13.0",
        "the project's minimum (issue 6); earlier fixes include CVE-2022-29217 (algorithm "
        "confusion, 2.4.0) and CVE-2024-53861 (issuer checked as a substring, 2.10.1)",
        required=True,
    ),
    Minimum(
        "requests",
        "2.32.4",
        "CVE-2024-47081: .netrc credentials sent to the wrong host; CVE-2024-35195 (2.32.0)",
        required=True,
    ),
    Minimum(
        "urllib3",
        "2.5.0",
        "CVE-2025-50181: redirects followed although retries disabled them; "
        "CVE-2024-37891 (Proxy-Authorization kept across origins, 2.2.2)",
        required=True,
    ),
    Minimum("idna", "3.7", "CVE-2024-3651: quadratic time in idna.encode on crafted input"),
    Minimum("certifi", "2024.7.4", "CVE-2024-39689: GLOBALTRUST root certificates removed"),
    Minimum(
        "cryptography",
        "44.0.1",
        "CVE-2024-12797: the OpenSSL bundled in its wheels (RPK authentication)",
        required=True,
    ),
    Minimum("PyYAML", "5.4", "CVE-2020-14343: code execution through full_load", required=True),
    Minimum(
        "pydantic",
        "2.4.0",
        "CVE-2024-3772: regular expression DoS in e-mail validation",
        required=True,
    ),
    Minimum("Mako", "1.2.2", "CVE-2022-40023: regular expression DoS in the lexer (alembic)"),
    Minimum("oauthlib", "3.2.2", "CVE-2022-36087: DoS through a crafted redirect URI (msrest)"),
)


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version (`3.14.1` -> (3, 14, 1); `2.0.0rc1` -> (2, 0, 0))."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    assert match, f"not a version: {version!r}"
    numbers = [int(part) for part in match.group().split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file (extras dropped), by canonical name."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def test_versions_are_compared_by_release() -> None:
    assert release("3.14.1") > release("3.14.0")
    assert release("3.9.5") < release("3.14.1")
    assert release("2.13") == release("2.13.0")
    assert release("2026.10.18") > release("2024.7.4")
    assert release("44.0.1") < release("50.0.2")


@pytest.mark.parametrize("minimum", MINIMUMS, ids=lambda m: m.package)
def test_the_installed_version_has_the_security_fixes(minimum: Minimum) -> None:
    try:
        installed = importlib.metadata.version(minimum.package)
    except importlib.metadata.PackageNotFoundError:
        assert not minimum.required, f"{minimum.package} is not installed"
        pytest.skip(f"{minimum.package} is not installed here (an optional dependency)")
    assert release(installed) >= release(minimum.version), (
        f"{minimum.package} {installed} is older than {minimum.version}: {minimum.why}"
    )


def test_the_requirements_pin_versions_with_the_security_fixes() -> None:
    files = [repo_root() / "requirements.txt", repo_root() / "requirements-dev.txt"]
    pinned = {name: (version, path.name) for path in files for name, version in pins(path).items()}
    assert canonical("aiohttp") in pinned and canonical("PyJWT") in pinned

    too_old = [
        f"{path} pins {minimum.package}=={version}, older than {minimum.version}: {minimum.why}"
        for minimum in MINIMUMS
        if (found := pinned.get(canonical(minimum.package))) is not None
        for version, path in [found]
        if release(version) < release(minimum.version)
    ]

    assert too_old == []


def test_every_runtime_requirement_is_pinned_exactly() -> None:
    # A range would let an install pick a release without the fixes above.
    loose = [
        line
        for line in (repo_root() / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if (text := line.split("#", 1)[0].strip()) and not text.startswith("-") and "==" not in text
    ]

    assert loose == []

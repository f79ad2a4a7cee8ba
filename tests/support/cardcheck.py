"""Checks for the Adaptive Cards the bot sends.

Three checks: schema 1.5, our own invariants, and the warnings of the official renderer.
Each problem starts with a JSON path (`$.body[0].items[1]: ...`), so a failing test
names the place in the card to fix.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator, ValidationError

from tests.support.prereq import node_tools, shared_dir

CARD_VERSION = "1.5"
SCHEMA_FILE = "adaptive-card-1.5.json"
RENDERER_SCRIPT = "validate-cards.js"
RENDERER_TIMEOUT_SECONDS = 300

# What Teams documents for the card's `msteams` property (unknown to the schema).
MSTEAMS_KEYS = frozenset({"width", "entities"})
MSTEAMS_WIDTH = "Full"

_MAX_MESSAGE = 300


def schema_path() -> Path | None:
    """The Adaptive Card 1.5 schema file, or None when the shared directory lacks it."""
    shared = shared_dir()
    if shared is None:
        return None
    candidate = shared / "schemas" / SCHEMA_FILE
    return candidate if candidate.is_file() else None


@functools.cache
def _validator() -> Draft6Validator:
    path = schema_path()
    if path is None:
        raise RuntimeError(
            f"Adaptive Card schema not found: expected schemas/{SCHEMA_FILE} in the "
            "shared directory (FRONTDESK_SHARED_DIR or ../shared beside the repository)"
        )
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft6Validator.check_schema(schema)
    return Draft6Validator(schema)


# --- schema ---------------------------------------------------------------------------


def schema_problems(card: Mapping[str, Any]) -> list[str]:
    """Problems against schema 1.5 (with `msteams` removed) and of `msteams` itself."""
    problems = _msteams_problems(card)
    stripped = copy.deepcopy(dict(card))
    stripped.pop("msteams", None)
    for error in _validator().iter_errors(stripped):
        problems.extend(f"{path}: {message}" for path, message in _explain(error))
    return list(dict.fromkeys(problems))


def _msteams_problems(card: Mapping[str, Any]) -> list[str]:
    if "msteams" not in card:
        return []
    msteams = card["msteams"]
    if not isinstance(msteams, dict):
        return [f"$.msteams: must be an object, got {_short(msteams)}"]
    problems = [
        f"$.msteams: unknown property {key!r} (Teams documents only {sorted(MSTEAMS_KEYS)})"
        for key in msteams
        if key not in MSTEAMS_KEYS
    ]
    if "width" in msteams and msteams["width"] != MSTEAMS_WIDTH:
        problems.append(
            f"$.msteams.width: must be {MSTEAMS_WIDTH!r}, got {_short(msteams['width'])}"
        )
    if "entities" in msteams:
        problems.extend(_mention_problems(msteams["entities"]))
    return problems


def _mention_problems(entities: Any) -> list[str]:
    if not isinstance(entities, list):
        return [f"$.msteams.entities: must be a list, got {_short(entities)}"]
    problems: list[str] = []
    for index, entity in enumerate(entities):
        path = f"$.msteams.entities[{index}]"
        if not isinstance(entity, dict):
            problems.append(f"{path}: must be an object, got {_short(entity)}")
            continue
        if entity.get("type") != "mention":
            problems.append(f"{path}.type: must be 'mention', got {_short(entity.get('type'))}")
        if not _non_empty_str(entity.get("text")):
            problems.append(f"{path}.text: must be the mention text, e.g. '<at>Name</at>'")
        mentioned = entity.get("mentioned")
        if not isinstance(mentioned, dict):
            problems.append(f"{path}.mentioned: must be an object with 'id' and 'name'")
            continue
        problems.extend(
            f"{path}.mentioned.{key}: must be a non-empty string"
            for key in ("id", "name")
            if not _non_empty_str(mentioned.get(key))
        )
    return problems


def _explain(error: ValidationError) -> Iterator[tuple[str, str]]:
    """Path and message of the errors that matter.

    Under an `anyOf` of element or action types, those of the alternative whose `type`
    the object declares; for other values, the innermost messages.
    """
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        yield error.json_path, _truncate(error.message)
        return
    alternatives: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        alternatives.setdefault(sub.relative_schema_path[0], []).append(sub)
    instance = error.instance
    if isinstance(instance, dict):
        if isinstance(instance.get("type"), str):
            matching = [
                errors for errors in alternatives.values() if not any(map(_rejects_type, errors))
            ]
            if not matching:
                yield error.json_path, _unknown_type(instance["type"], error.context)
                return
        else:
            matching = [
                errors for errors in alternatives.values() if not any(map(_rejects_object, errors))
            ]
            if len(matching) > 1:  # a union of typed objects, told apart by `type`
                got = f", got {_short(instance['type'])}" if "type" in instance else ""
                yield error.json_path, f"'type' must name an element or action{got}"
                return
        if matching:
            for sub in min(matching, key=len):
                yield from _explain(sub)
            return
    leaves = list(_leaves(error))
    # Enums are an anyOf of the values and a case-insensitive pattern: the values
    # make the clearer message.
    enum_errors = [leaf for leaf in leaves if leaf.validator in ("enum", "const")]
    chosen = enum_errors or leaves
    if not chosen:
        yield error.json_path, _truncate(error.message)
        return
    yield (
        error.json_path,
        _truncate(" or ".join(dict.fromkeys(leaf.message for leaf in chosen))),
    )


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """Innermost errors about the same value under nested anyOf/oneOf (not `null`)."""
    for sub in error.context or ():
        if sub.relative_path:
            continue
        if sub.validator in ("anyOf", "oneOf") and sub.context:
            yield from _leaves(sub)
        elif not (sub.validator == "type" and sub.validator_value == "null"):
            yield sub


def _rejects_type(error: ValidationError) -> bool:
    """Whether an alternative's error says the object is of another type."""
    path = list(error.relative_path)
    if path == ["type"]:
        return error.validator in ("enum", "const")
    return not path and error.validator in ("type", "enum", "const")


def _rejects_object(error: ValidationError) -> bool:
    """Whether an alternative's error says the value is not an object at all."""
    return not error.relative_path and error.validator == "type"


def _unknown_type(type_name: str, errors: Collection[ValidationError]) -> str:
    known: list[str] = []
    for sub in errors:
        allowed = sub.validator_value
        if list(sub.relative_path) == ["type"] and isinstance(allowed, list):
            known.extend(str(value) for value in allowed)
    return f"unknown type {type_name!r} here; expected one of {sorted(set(known))}"


# --- invariants -----------------------------------------------------------------------


def invariant_problems(card: Mapping[str, Any], known_verbs: Collection[str]) -> list[str]:
    """Our own rules, checked through the whole card.

    Known Action.Execute verbs with object data, labelled inputs with ids, error
    messages on required inputs, unique ids, type AdaptiveCard and version 1.5, no
    Action.Submit.
    """
    walker = _InvariantWalker(frozenset(known_verbs))
    if card.get("type") != "AdaptiveCard":
        walker.problems.append(f"$.type: must be 'AdaptiveCard', got {_short(card.get('type'))}")
    if card.get("version") != CARD_VERSION:
        walker.problems.append(
            f"$.version: must be {CARD_VERSION!r}, got {_short(card.get('version'))}"
        )
    walker.walk(card, "$")
    return walker.problems


class _InvariantWalker:
    def __init__(self, known_verbs: frozenset[str]) -> None:
        self.known_verbs = known_verbs
        self.problems: list[str] = []
        self.first_seen: dict[str, str] = {}

    def walk(
        self,
        node: Any,
        path: str,
        *,
        implied_type: str | None = None,
        owner_id: str | None = None,
    ) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                self.walk(item, f"{path}[{index}]")
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type", implied_type)
        if isinstance(kind, str):
            self.check(node, kind, path, owner_id)
        for key, value in node.items():
            if key == "msteams" or (
                key == "data" and isinstance(kind, str) and kind.startswith("Action.")
            ):
                continue  # Teams-specific or author data, not card content
            self.walk(
                value,
                f"{path}.{key}",
                # refresh.action is an Action.Execute even when it omits `type`
                implied_type="Action.Execute"
                if key == "action" and path.endswith(".refresh")
                else None,
                # a fallback element may repeat the id of the element it stands in for
                owner_id=node.get("id") if key == "fallback" else None,
            )

    def check(self, node: dict[str, Any], kind: str, path: str, owner_id: str | None) -> None:
        named = f"{kind} {node['id']!r}" if _non_empty_str(node.get("id")) else kind
        where = f"{path} ({named})"
        self.check_id(node.get("id"), where, path, owner_id)
        if kind.startswith("Input."):
            if not _non_empty_str(node.get("id")):
                self.problems.append(f"{where}: input has no id")
            if not _non_empty_str(node.get("label")):
                self.problems.append(f"{where}: input has no label")
            if node.get("isRequired") is True and not _non_empty_str(node.get("errorMessage")):
                self.problems.append(f"{where}: required input has no errorMessage")
        elif kind == "Action.Submit":
            self.problems.append(
                f"{where}: Action.Submit is not used here; use Action.Execute with a verb"
            )
        elif kind == "Action.Execute":
            verb = node.get("verb")
            if not _non_empty_str(verb):
                self.problems.append(f"{where}: Action.Execute has no verb")
            elif verb not in self.known_verbs:
                self.problems.append(f"{where}: unknown verb {verb!r}")
            if "data" in node and not isinstance(node["data"], dict):
                self.problems.append(
                    f"{where}: Action.Execute data must be an object, got {_short(node['data'])}"
                )

    def check_id(self, element_id: Any, where: str, path: str, owner_id: str | None) -> None:
        if element_id is None or (owner_id is not None and element_id == owner_id):
            return
        if not _non_empty_str(element_id):
            self.problems.append(
                f"{where}: id must be a non-empty string, got {_short(element_id)}"
            )
            return
        if element_id in self.first_seen:
            self.problems.append(
                f"{where}: duplicate id {element_id!r} (first at {self.first_seen[element_id]})"
            )
        else:
            self.first_seen[element_id] = path


# --- renderer -------------------------------------------------------------------------


def renderer_warnings(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Warnings of the official renderer (npm adaptivecards) per card, one node run."""
    if not cards:
        return {}
    node = shutil.which("node")
    script = node_tools() / RENDERER_SCRIPT
    if node is None:
        raise RuntimeError("node is not on PATH: the Adaptive Cards renderer check needs Node.js")
    with tempfile.TemporaryDirectory(prefix="cardcheck-") as tmp:
        input_file = Path(tmp) / "cards.json"
        input_file.write_text(json.dumps(cards), encoding="utf-8")
        try:
            completed = subprocess.run(
                [node, str(script), str(input_file)],
                cwd=node_tools(),
                capture_output=True,
                text=True,
                timeout=RENDERER_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"{RENDERER_SCRIPT} timed out after {RENDERER_TIMEOUT_SECONDS} s"
            ) from exc
    if completed.returncode != 0:
        raise RuntimeError(
            f"{RENDERER_SCRIPT} exited with status {completed.returncode}: "
            f"{completed.stderr.strip()[-2000:]}"
        )
    return _parse_renderer_output(completed.stdout, cards.keys())


def _parse_renderer_output(stdout: str, names: Collection[str]) -> dict[str, list[str]]:
    try:
        output = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{RENDERER_SCRIPT} printed no JSON: {stdout[:500]!r}") from exc
    if not isinstance(output, dict):
        raise RuntimeError(f"{RENDERER_SCRIPT} printed {type(output).__name__}, expected an object")
    result: dict[str, list[str]] = {}
    for name in names:
        entry = output.get(name)
        warnings = entry.get("warnings") if isinstance(entry, dict) else None
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise RuntimeError(
                f"{RENDERER_SCRIPT} gave no warnings list for card {name!r}: {_short(entry)}"
            )
        result[name] = list(warnings)
    return result


# --- all together ---------------------------------------------------------------------


def check_cards(
    cards: Mapping[str, Mapping[str, Any]],
    known_verbs: Collection[str],
    *,
    use_renderer: bool = True,
) -> dict[str, list[str]]:
    """Schema, invariant and renderer problems per card name, for cards with problems.

    The renderer runs unless `use_renderer` is False, and fails without node: tests that use
    it call `require(node_available(), ...)` first.
    """
    rendered = renderer_warnings(cards) if use_renderer else {}
    result: dict[str, list[str]] = {}
    for name, card in cards.items():
        problems = [f"schema: {p}" for p in schema_problems(card)]
        problems += [f"invariant: {p}" for p in invariant_problems(card, known_verbs)]
        problems += [f"renderer: {w}" for w in rendered.get(name, [])]
        if problems:
            result[name] = problems
    return result


# --- helpers --------------------------------------------------------------------------


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _short(value: Any) -> str:
    return _truncate(repr(value), 80)


def _truncate(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

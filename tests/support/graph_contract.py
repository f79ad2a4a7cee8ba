"""Check Microsoft Graph requests against Microsoft's own Graph v1.0 metadata (CSDL).

`check_request(method, path, body, query=...)` resolves the path segment by segment in the
v1.0 model (entity sets and singletons, keys, navigation and structural properties, type casts,
bound actions and functions), checks that the HTTP method fits what it reaches, that the body's
properties exist on the entity type or action parameters (recursively, with loose primitive
kinds and enum members), and that `$select`/`$expand`/`$orderby` name real properties. It
returns human-readable problems, each starting with `METHOD /path: `; `assert_valid_request`
turns them into a test failure. `/$batch` bodies are checked request by request.

Rules that go beyond the bare CSDL, each because Graph behaves that way:
- URL segments, query option names and enum values match case-insensitively (the docs write
  `/places/microsoft.graph.roomlist` for the type `roomList`, and bodies like
  `"contentType": "HTML"`); action parameter names too (the CSDL spells getSchedule's
  parameters `Schedules`, `StartTime`, the docs `schedules`, `startTime`). Property names in
  bodies must match exactly.
- After a collection, a segment made of letters only is not taken as a key (`.../findRooms`
  would otherwise read as the room with id "findRooms"): keys are ids, addresses or
  `{placeholders}`; the few well-known names (`inbox`, ...) are listed in `WELL_KNOWN_KEYS`.
- Capability annotations are enforced: Insertable/Updatable/Deletable/Readable,
  ReadByKeyRestrictions, IndexableByKey, Navigability=None, required custom query options and
  DerivedTypeConstraint. A type cast does not inherit the set's Readable=false (the metadata marks
  `/places` itself unreadable; `/places/microsoft.graph.room` is how rooms are listed).
- Open types (event, user, onlineMeeting are `OpenType="true"`) are checked as closed: the bot
  sends no dynamic properties, so an unknown one is a typo.
- `$select`/`$orderby` may name a property of a derived type unqualified (the docs select
  `displayName` on `/me/manager`, a directoryObject); a name on no type in the hierarchy fails.
- Loose primitive kinds: strings for String/Guid/Date/DateTimeOffset/..., integers for Int*,
  numbers for Double/Single/Decimal, booleans for Boolean; DateTimeOffset must carry an offset.

`check_request` raises RuntimeError when the metadata file is missing: gate on
`metadata_available()` (tests use `require(metadata_available(), ...)`).
"""

from __future__ import annotations

import functools
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.support.prereq import shared_dir

METADATA_FILE = "graph-v1.0-metadata.xml"
MAX_BATCH_REQUESTS = 20

# OData system query options Graph understands (the `$` is optional in v1.0).
SYSTEM_QUERY_OPTIONS = frozenset(
    (
        "select expand filter orderby top skip count search format skiptoken deltatoken levels "
        "apply"
    ).split()
)
# Custom query options accepted anywhere (calendarView's range and similar).
GENERIC_QUERY_OPTIONS = frozenset({"startdatetime", "enddatetime"})
# Keys that are names rather than ids (well-known Outlook folders).
WELL_KNOWN_KEYS = frozenset(
    (
        "inbox drafts sentitems deleteditems junkemail outbox archive msgfolderroot clutter "
        "conflicts conversationhistory localfailures recoverableitemsdeletions scheduled "
        "searchfolders serverfailures syncissues"
    ).split()
)
_BATCH_REQUEST_KEYS = frozenset({"id", "method", "url", "body", "headers", "dependsOn"})
_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})

_STRING_KINDS = frozenset(
    "Edm.String Edm.Guid Edm.Date Edm.TimeOfDay Edm.Duration Edm.DateTimeOffset Edm.Binary".split()
)
_INTEGER_KINDS = frozenset({"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"})
_NUMBER_KINDS = frozenset({"Edm.Double", "Edm.Single", "Edm.Decimal"})
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_DURATION = re.compile(r"-?P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")
_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
_WORD = re.compile(r"[A-Za-z]+")
_CALL = re.compile(r"(?P<name>[^()]+)\((?P<args>.*)\)")


# --- the model ------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRef:
    """A reference to a type: qualified name, collection or single, nullable."""

    name: str
    collection: bool = False
    nullable: bool = True

    def __str__(self) -> str:
        return f"Collection({self.name})" if self.collection else self.name


@dataclass(frozen=True)
class PropertyDef:
    """A structural or navigation property as declared on one type."""

    name: str
    type: TypeRef
    navigation: bool
    declared_on: str
    contains_target: bool = False


@dataclass(frozen=True)
class StructuredType:
    """An entity or complex type with its declared (not inherited) properties."""

    name: str
    kind: str  # "entity" or "complex"
    base: str | None
    abstract: bool
    open: bool
    properties: Mapping[str, PropertyDef]


@dataclass(frozen=True)
class EnumType:
    """An enum type and its member names."""

    name: str
    members: tuple[str, ...]
    is_flags: bool


@dataclass(frozen=True)
class Parameter:
    """A (non-binding) parameter of an action or function."""

    name: str
    type: TypeRef
    optional: bool


@dataclass(frozen=True)
class Operation:
    """A bound or unbound action or function."""

    name: str
    namespace: str
    kind: str  # "action" or "function"
    binding: TypeRef | None
    parameters: tuple[Parameter, ...]
    return_type: TypeRef | None

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def bound(self) -> bool:
        return self.binding is not None

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called `name`, compared case-insensitively (as Graph does)."""
        lowered = name.lower()
        return next((p for p in self.parameters if p.name.lower() == lowered), None)


@dataclass(frozen=True)
class NavigationSource:
    """An entity set or singleton of the entity container."""

    name: str
    type: str
    kind: str  # "entitySet" or "singleton"


@dataclass
class Capabilities:
    """Capability and core annotations that apply to one target (a set, a property, a type)."""

    readable: bool | None = None
    readable_by_key: bool | None = None
    insertable: bool | None = None
    updatable: bool | None = None
    deletable: bool | None = None
    indexable_by_key: bool | None = None
    navigable: bool | None = None
    computed: bool = False
    query_options: dict[str, bool] = field(default_factory=dict)  # custom option -> required
    derived_types: frozenset[str] | None = None

    def merged(self, fallback: Capabilities) -> Capabilities:
        """These capabilities, with `fallback` filling what these leave open."""

        def pick(mine: bool | None, theirs: bool | None) -> bool | None:
            return mine if mine is not None else theirs

        return Capabilities(
            readable=pick(self.readable, fallback.readable),
            readable_by_key=pick(self.readable_by_key, fallback.readable_by_key),
            insertable=pick(self.insertable, fallback.insertable),
            updatable=pick(self.updatable, fallback.updatable),
            deletable=pick(self.deletable, fallback.deletable),
            indexable_by_key=pick(self.indexable_by_key, fallback.indexable_by_key),
            navigable=pick(self.navigable, fallback.navigable),
            computed=self.computed or fallback.computed,
            query_options={**fallback.query_options, **self.query_options},
            derived_types=(
                self.derived_types if self.derived_types is not None else fallback.derived_types
            ),
        )


_NO_CAPABILITIES = Capabilities()


class GraphMetadata:
    """The Graph v1.0 model read from the CSDL: types, container and operations."""

    def __init__(
        self,
        *,
        structured: dict[str, StructuredType],
        enums: dict[str, EnumType],
        operations: list[Operation],
        container: str,
        sources: dict[str, NavigationSource],
        capabilities: dict[str, Capabilities],
        aliases: Mapping[str, str] | None = None,
        source: Path | None = None,
        load_seconds: float = 0.0,
    ) -> None:
        self.structured = structured
        self.enums = enums
        self.operations = tuple(operations)
        self.container = container
        self.sources = sources
        self.capabilities = capabilities
        self.source = source
        self.load_seconds = load_seconds
        self.aliases = dict(aliases or {})
        self.namespaces = {n.rpartition(".")[0].lower() for n in [*structured, *enums]}
        self.namespaces.update(alias.lower() for alias in self.aliases)
        self._types_by_lower = {name.lower(): name for name in [*structured, *enums]}
        self._sources_by_lower = {name.lower(): name for name in sources}
        self._ops_by_name: dict[str, list[Operation]] = {}
        for op in operations:
            self._ops_by_name.setdefault(op.name.lower(), []).append(op)
        self._properties: dict[str, dict[str, PropertyDef]] = {}
        self._children: dict[str, list[str]] = {}
        for t in structured.values():
            if t.base is not None:
                self._children.setdefault(t.base, []).append(t.name)

    @classmethod
    def from_file(cls, path: Path) -> GraphMetadata:
        """Parse a CSDL file (with iterparse, clearing each top-level element once read)."""
        started = time.perf_counter()
        metadata = _CsdlReader().read(path)
        metadata.source = path
        metadata.load_seconds = time.perf_counter() - started
        return metadata

    # types

    @property
    def entity_sets(self) -> dict[str, NavigationSource]:
        return {n: s for n, s in self.sources.items() if s.kind == "entitySet"}

    @property
    def singletons(self) -> dict[str, NavigationSource]:
        return {n: s for n, s in self.sources.items() if s.kind == "singleton"}

    def find_type(self, name: str) -> str | None:
        """The qualified name of a structured or enum type (alias or not, any case)."""
        namespace, _, simple = name.rpartition(".")
        if namespace in self.aliases:
            name = f"{self.aliases[namespace]}.{simple}"
        if name in self.structured or name in self.enums:
            return name
        return self._types_by_lower.get(name.lower())

    def is_qualified_name(self, name: str) -> bool:
        """Whether `name` starts with a namespace or alias of the model (`microsoft.graph.x`)."""
        return name.rpartition(".")[0].lower() in self.namespaces

    def entity_type(self, name: str) -> StructuredType | None:
        t = self.structured.get(name)
        return t if t is not None and t.kind == "entity" else None

    def complex_type(self, name: str) -> StructuredType | None:
        t = self.structured.get(name)
        return t if t is not None and t.kind == "complex" else None

    def base_types(self, name: str) -> list[str]:
        """`name` and its base types, most derived first."""
        chain: list[str] = []
        current: str | None = name
        while current is not None and current in self.structured and current not in chain:
            chain.append(current)
            current = self.structured[current].base
        return chain

    def is_same_or_derived(self, name: str, base: str) -> bool:
        return base in self.base_types(name)

    def derived_types(self, name: str) -> list[str]:
        """Every type derived from `name`, transitively (not `name` itself)."""
        found: list[str] = []
        pending = list(self._children.get(name, []))
        while pending:
            current = pending.pop()
            found.append(current)
            pending.extend(self._children.get(current, []))
        return sorted(found)

    def properties(self, name: str) -> Mapping[str, PropertyDef]:
        """All properties of a structured type, its base types' included."""
        cached = self._properties.get(name)
        if cached is None:
            cached = {}
            for type_name in reversed(self.base_types(name)):
                cached.update(self.structured[type_name].properties)
            self._properties[name] = cached
        return cached

    def find_property(
        self, type_name: str, name: str, *, ignore_case: bool = False
    ) -> PropertyDef | None:
        props = self.properties(type_name)
        if name in props or not ignore_case:
            return props.get(name)
        lowered = name.lower()
        return next((p for key, p in props.items() if key.lower() == lowered), None)

    def derived_declaring(self, type_name: str, prop: str) -> list[str]:
        """Types derived from `type_name` that declare a property called `prop`."""
        return [d for d in self.derived_types(type_name) if prop in self.structured[d].properties]

    # operations

    def operations_named(self, name: str) -> list[Operation]:
        """Every action and function called `name` (simple or qualified, any case)."""
        namespace, _, simple = name.rpartition(".")
        ops = self._ops_by_name.get(simple.lower(), [])
        if namespace:
            ops = [op for op in ops if op.namespace.lower() == namespace.lower()]
        return list(ops)

    def bound_operation(self, name: str, binding: str, collection: bool) -> Operation | None:
        """The operation `name` bound to `binding` (or a base type of it) with that cardinality."""
        chain = self.base_types(binding)
        best: tuple[int, Operation] | None = None
        for op in self.operations_named(name):
            if op.binding is None or op.binding.collection != collection:
                continue
            if op.binding.name in chain:
                distance = chain.index(op.binding.name)
                if best is None or distance < best[0]:
                    best = (distance, op)
        return best[1] if best else None

    # container

    def find_source(self, name: str) -> NavigationSource | None:
        key = name if name in self.sources else self._sources_by_lower.get(name.lower())
        return self.sources.get(key) if key else None

    def capabilities_for(self, *targets: str) -> Capabilities:
        """Capabilities of the first target, completed by the following ones."""
        merged = Capabilities()
        for target in targets:
            found = self.capabilities.get(target)
            if found is not None:
                merged = merged.merged(found)
        return merged


# --- reading the CSDL ----------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _bool(value: str | None, default: bool = False) -> bool:
    return default if value is None else value.strip().lower() == "true"


def _holder_value(holder: ET.Element) -> Any:
    """The value of an Annotation or PropertyValue: an attribute or its single child element."""
    for attr in ("Bool", "String", "Int", "EnumMember", "Date", "PropertyPath", "Path", "Float"):
        raw = holder.get(attr)
        if raw is not None:
            if attr == "Bool":
                return _bool(raw)
            if attr == "Int":
                return int(raw)
            return raw
    children = [c for c in holder if _local(c.tag) != "Annotation"]
    if not children:
        return True if _local(holder.tag) == "Annotation" else None
    return _element_value(children[0])


def _element_value(elem: ET.Element) -> Any:
    tag = _local(elem.tag)
    if tag == "Record":
        return {
            pv.get("Property", ""): _holder_value(pv)
            for pv in elem
            if _local(pv.tag) == "PropertyValue"
        }
    if tag == "Collection":
        return [_element_value(child) for child in elem]
    if tag == "Bool":
        return _bool(elem.text)
    if tag == "Int":
        return int(elem.text or "0")
    return (elem.text or "").strip()


@dataclass
class _RawType:
    name: str
    kind: str
    base: str | None
    abstract: bool
    open: bool
    properties: list[tuple[str, str, bool, bool, bool]]  # name, type, nullable, nav, contained


@dataclass
class _RawOperation:
    name: str
    namespace: str
    kind: str
    bound: bool
    parameters: list[tuple[str, str, bool, bool]]  # name, type, nullable, optional
    return_type: str | None


class _CsdlReader:
    """Reads the CSDL with iterparse; names are qualified once every alias is known."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.types: list[_RawType] = []
        self.enums: list[EnumType] = []
        self.operations: list[_RawOperation] = []
        self.sources: list[tuple[str, str, str]] = []
        self.container = ""
        self.annotations: list[tuple[str, str, Any]] = []  # raw target, term, value

    def read(self, path: Path) -> GraphMetadata:
        namespace = ""
        depth = 0
        for event, elem in ET.iterparse(path, events=("start", "end")):
            if event == "start":
                depth += 1
                if _local(elem.tag) == "Schema":
                    namespace = elem.get("Namespace", "")
                    alias = elem.get("Alias")
                    if alias:
                        self.aliases[alias] = namespace
                continue
            depth -= 1
            # Edmx > DataServices > Schema > (types, container, operations, annotations)
            if depth == 3:
                self._top_level(elem, namespace)
                elem.clear()
        return self._build()

    def _top_level(self, elem: ET.Element, namespace: str) -> None:
        tag = _local(elem.tag)
        if tag in ("EntityType", "ComplexType"):
            self._structured(elem, namespace, "entity" if tag == "EntityType" else "complex")
        elif tag == "EnumType":
            members = tuple(m.get("Name", "") for m in elem if _local(m.tag) == "Member")
            self.enums.append(
                EnumType(
                    name=f"{namespace}.{elem.get('Name')}",
                    members=members,
                    is_flags=_bool(elem.get("IsFlags")),
                )
            )
        elif tag in ("Action", "Function"):
            self._operation(elem, namespace, tag.lower())
        elif tag == "EntityContainer":
            self._container(elem, namespace)
        elif tag == "Annotations":
            target = elem.get("Target", "")
            for ann in elem:
                if _local(ann.tag) == "Annotation":
                    self._annotation(target, ann)

    def _annotation(self, target: str, ann: ET.Element) -> None:
        self.annotations.append((target, ann.get("Term", ""), _holder_value(ann)))

    def _structured(self, elem: ET.Element, namespace: str, kind: str) -> None:
        name = f"{namespace}.{elem.get('Name')}"
        props: list[tuple[str, str, bool, bool, bool]] = []
        for child in elem:
            tag = _local(child.tag)
            if tag in ("Property", "NavigationProperty"):
                prop = child.get("Name", "")
                props.append(
                    (
                        prop,
                        child.get("Type", ""),
                        _bool(child.get("Nullable"), default=True),
                        tag == "NavigationProperty",
                        _bool(child.get("ContainsTarget")),
                    )
                )
                for ann in child:
                    if _local(ann.tag) == "Annotation":
                        self._annotation(f"{name}/{prop}", ann)
            elif tag == "Annotation":
                self._annotation(name, child)
        self.types.append(
            _RawType(
                name=name,
                kind=kind,
                base=elem.get("BaseType"),
                abstract=_bool(elem.get("Abstract")),
                open=_bool(elem.get("OpenType")),
                properties=props,
            )
        )

    def _operation(self, elem: ET.Element, namespace: str, kind: str) -> None:
        params: list[tuple[str, str, bool, bool]] = []
        return_type: str | None = None
        for child in elem:
            tag = _local(child.tag)
            if tag == "Parameter":
                optional = any(
                    _local(a.tag) == "Annotation"
                    and a.get("Term", "").endswith("OptionalParameter")
                    for a in child
                )
                params.append(
                    (
                        child.get("Name", ""),
                        child.get("Type", ""),
                        _bool(child.get("Nullable"), default=True),
                        optional,
                    )
                )
            elif tag == "ReturnType":
                return_type = child.get("Type")
        self.operations.append(
            _RawOperation(
                name=elem.get("Name", ""),
                namespace=namespace,
                kind=kind,
                bound=_bool(elem.get("IsBound")),
                parameters=params,
                return_type=return_type,
            )
        )

    def _container(self, elem: ET.Element, namespace: str) -> None:
        self.container = f"{namespace}.{elem.get('Name')}"
        for child in elem:
            tag = _local(child.tag)
            if tag not in ("EntitySet", "Singleton"):
                continue
            name = child.get("Name", "")
            raw_type = child.get("EntityType") or child.get("Type") or ""
            kind = "entitySet" if tag == "EntitySet" else "singleton"
            self.sources.append((name, raw_type, kind))
            for ann in child:
                if _local(ann.tag) == "Annotation":
                    self._annotation(f"{self.container}/{name}", ann)

    # building the model once every alias is known

    def _qualify(self, name: str) -> str:
        namespace, _, simple = name.rpartition(".")
        if namespace in self.aliases:
            return f"{self.aliases[namespace]}.{simple}"
        return name

    def _ref(self, raw: str, nullable: bool = True) -> TypeRef:
        if raw.startswith("Collection(") and raw.endswith(")"):
            return TypeRef(self._qualify(raw[len("Collection(") : -1]), True, nullable)
        return TypeRef(self._qualify(raw), False, nullable)

    def _target(self, raw: str) -> str:
        head, sep, rest = raw.partition("/")
        return f"{self._qualify(head)}{sep}{rest}"

    def _build(self) -> GraphMetadata:
        structured: dict[str, StructuredType] = {}
        for raw in self.types:
            props = {
                name: PropertyDef(
                    name=name,
                    type=self._ref(type_name, nullable),
                    navigation=nav,
                    declared_on=raw.name,
                    contains_target=contained,
                )
                for name, type_name, nullable, nav, contained in raw.properties
            }
            structured[raw.name] = StructuredType(
                name=raw.name,
                kind=raw.kind,
                base=self._qualify(raw.base) if raw.base else None,
                abstract=raw.abstract,
                open=raw.open,
                properties=props,
            )
        operations = []
        for op in self.operations:
            params = [
                Parameter(name, self._ref(type_name, nullable), optional)
                for name, type_name, nullable, optional in op.parameters
            ]
            binding = params.pop(0).type if op.bound and params else None
            operations.append(
                Operation(
                    name=op.name,
                    namespace=op.namespace,
                    kind=op.kind,
                    binding=binding,
                    parameters=tuple(params),
                    return_type=self._ref(op.return_type) if op.return_type else None,
                )
            )
        sources = {
            name: NavigationSource(name, self._qualify(type_name), kind)
            for name, type_name, kind in self.sources
        }
        capabilities: dict[str, Capabilities] = {}
        for target, term, value in self.annotations:
            _apply_term(capabilities, self._target(target), term, value, self._qualify)
        return GraphMetadata(
            structured=structured,
            enums={e.name: e for e in self.enums},
            operations=operations,
            container=self.container,
            sources=sources,
            capabilities=capabilities,
            aliases=self.aliases,
        )


def _apply_term(
    capabilities: dict[str, Capabilities],
    target: str,
    term: str,
    value: Any,
    qualify: Callable[[str], str],
) -> None:
    """Record the capability and core annotations the checks use; ignore the others."""
    short = term.rpartition(".")[2]
    caps = capabilities.setdefault(target, Capabilities())
    record = value if isinstance(value, dict) else {}
    if short == "ReadRestrictions":
        if isinstance(record.get("Readable"), bool):
            caps.readable = record["Readable"]
        by_key = record.get("ReadByKeyRestrictions")
        if isinstance(by_key, dict) and isinstance(by_key.get("Readable"), bool):
            caps.readable_by_key = by_key["Readable"]
        for option in record.get("CustomQueryOptions") or []:
            if isinstance(option, dict) and option.get("Name"):
                caps.query_options[str(option["Name"])] = option.get("Required") is True
    elif short == "InsertRestrictions" and isinstance(record.get("Insertable"), bool):
        caps.insertable = record["Insertable"]
    elif short == "UpdateRestrictions" and isinstance(record.get("Updatable"), bool):
        caps.updatable = record["Updatable"]
    elif short == "DeleteRestrictions" and isinstance(record.get("Deletable"), bool):
        caps.deletable = record["Deletable"]
    elif short == "IndexableByKey" and isinstance(value, bool):
        caps.indexable_by_key = value
    elif short == "Computed" and value is True:
        caps.computed = True
    elif short == "DerivedTypeConstraint" and isinstance(value, list):
        caps.derived_types = frozenset(qualify(str(v)) for v in value)
    elif short == "NavigationRestrictions":
        if str(record.get("Navigability", "")).endswith("/None"):
            caps.navigable = False
        for restricted in record.get("RestrictedProperties") or []:
            if not isinstance(restricted, dict):
                continue
            path = restricted.get("NavigationProperty")
            nested = f"{target}/{path}" if isinstance(path, str) and path else target
            for key, nested_value in restricted.items():
                if key.endswith("Restrictions"):
                    _apply_term(capabilities, nested, key, nested_value, qualify)


# --- loading -------------------------------------------------------------------------------


def metadata_path() -> Path | None:
    """The Graph v1.0 CSDL in the shared directory, or None when it is missing."""
    shared = shared_dir()
    if shared is None:
        return None
    candidate = shared / "schemas" / METADATA_FILE
    return candidate if candidate.is_file() else None


def metadata_available() -> bool:
    """Whether the Graph v1.0 metadata file can be found."""
    return metadata_path() is not None


@functools.cache
def _load(path: Path) -> GraphMetadata:
    return GraphMetadata.from_file(path)


def load_metadata(path: Path | None = None) -> GraphMetadata:
    """The parsed Graph v1.0 model, read once per process and file."""
    if path is None:
        path = metadata_path()
    if path is None:
        raise RuntimeError(
            f"Graph metadata not found: expected schemas/{METADATA_FILE} in the shared directory "
            "(FRONTDESK_SHARED_DIR or ../shared beside the repository)"
        )
    return _load(path.resolve())


# --- resolving paths -----------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """What a request path reaches in the v1.0 model, and what is wrong with the request."""

    method: str
    path: str
    kind: str  # entitySet, singleton, entity, collection, property, action, function, ...
    type_name: str | None  # the final type; for an operation its return type
    is_collection: bool
    operation: Operation | None
    problems: tuple[str, ...]
    capabilities: Capabilities = field(default_factory=Capabilities, repr=False)
    required_query: frozenset[str] = frozenset()
    allowed_query: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Position:
    kind: str
    type_name: str | None
    collection: bool
    caps: Capabilities
    nav_path: str  # container-rooted path of navigation names, for path-targeted annotations
    by_key: Capabilities | None = None  # the collection's capabilities after a key segment
    operation: Operation | None = None
    query: dict[str, bool] = field(default_factory=dict)


def resolve(method: str, path: str, *, metadata: GraphMetadata | None = None) -> Resolution:
    """Resolve `path` (relative to /v1.0) segment by segment and check the method fits."""
    model = metadata or load_metadata()
    method = method.upper()
    problems: list[str] = []
    segments = [unquote(s) for s in path.split("?", 1)[0].strip("/").split("/") if s]
    if not segments:
        return Resolution(method, path, "root", None, False, None, ("empty path",))
    if segments[0].lower() in ("v1.0", "beta"):
        problems.append(
            f"path starts with the version segment '{segments[0]}': give the path relative to "
            "/v1.0 (and never call /beta)"
        )
        segments = segments[1:]
    if segments == ["$batch"]:
        if method != "POST":
            problems.append(f"{method} on $batch: a batch is sent with POST")
        return Resolution(method, path, "batch", None, False, None, tuple(problems))
    if segments == ["$metadata"]:
        return Resolution(method, path, "metadata", None, False, None, tuple(problems))

    position = _root(model, segments[0], problems)
    for index, segment in enumerate(segments[1:], start=1):
        if position is None:
            break
        if position.kind in ("action", "function", "count", "value"):
            problems.append(f"segment '{segment}': nothing may follow '{segments[index - 1]}'")
            position = None
            break
        position = _step(model, position, segment, problems)
    if position is None:
        return Resolution(method, path, "unknown", None, False, None, tuple(problems))
    problems.extend(_method_problems(method, position))
    required = frozenset(name for name, req in position.query.items() if req)
    return Resolution(
        method=method,
        path=path,
        kind=position.kind,
        type_name=position.type_name,
        is_collection=position.collection,
        operation=position.operation,
        problems=tuple(problems),
        capabilities=position.caps,
        required_query=required,
        allowed_query=frozenset(position.query),
    )


def _root(model: GraphMetadata, segment: str, problems: list[str]) -> _Position | None:
    name, key = _split_call(segment)
    source = model.find_source(name)
    if source is None:
        problems.append(
            f"segment '{segment}': no entity set or singleton called '{name}' in Graph v1.0"
        )
        return None
    target = f"{model.container}/{source.name}"
    caps = model.capabilities_for(target)
    if source.kind == "singleton":
        if key is not None:
            problems.append(f"segment '{segment}': singleton '{source.name}' takes no key")
        return _Position("singleton", source.type, False, caps, target, query=caps.query_options)
    position = _Position("entitySet", source.type, True, caps, target, query=caps.query_options)
    if key is not None:
        return _key(model, position, key, segment, problems)
    return position


def _split_call(segment: str) -> tuple[str, str | None]:
    """`events('AAMk')` -> ("events", "'AAMk'"); `me` -> ("me", None)."""
    match = _CALL.fullmatch(segment)
    if match is None:
        return segment, None
    return match.group("name"), match.group("args")


def _key(
    model: GraphMetadata, position: _Position, key: str, segment: str, problems: list[str]
) -> _Position:
    if position.caps.indexable_by_key is False:
        problems.append(
            f"segment '{segment}': {position.type_name} items are not addressable by key here "
            "(Capabilities.IndexableByKey=false)"
        )
    return _Position(
        kind="entity",
        type_name=position.type_name,
        collection=False,
        caps=Capabilities(),
        nav_path=position.nav_path,
        by_key=position.caps,
        query=dict(position.query),
    )


def _step(
    model: GraphMetadata, position: _Position, segment: str, problems: list[str]
) -> _Position | None:
    current = position.type_name or ""
    shape = f"Collection({current})" if position.collection else current
    if segment in ("$count", "$ref", "$value"):
        return _special(position, segment, problems)
    if position.kind == "property" and current not in model.structured:
        problems.append(f"segment '{segment}': {shape} has no segments below it")
        return None
    name, args = _split_call(segment)

    # A bound operation: by simple or qualified name, on this type or a base type.
    if current in model.structured:
        op = model.bound_operation(name, current, position.collection)
        if op is not None:
            return _operation(model, position, op, args, segment, problems)

    # A type cast (an e-mail address as a key also has dots, but no namespace).
    if model.is_qualified_name(name):
        cast = model.find_type(name)
        if cast is None or cast not in model.structured:
            known = model.operations_named(name)
            detail = (
                _binding_hint(known, shape) if known else "no such type or operation in Graph v1.0"
            )
            problems.append(f"segment '{segment}': {detail}")
            return None
        return _cast(model, position, cast, segment, problems)

    if position.collection:
        return _after_collection(model, position, segment, name, args, problems)

    prop = model.find_property(current, name, ignore_case=True) if current else None
    if prop is None:
        problems.append(f"segment '{segment}': {_not_found(model, name, current, shape)}")
        return None
    result = _property(model, position, prop)
    if args is not None:
        if not prop.type.collection:
            problems.append(f"segment '{segment}': '{prop.name}' is single-valued; no key")
            return result
        return _key(model, result, args, segment, problems)
    return result


def _after_collection(
    model: GraphMetadata,
    position: _Position,
    segment: str,
    name: str,
    args: str | None,
    problems: list[str],
) -> _Position | None:
    current = position.type_name or ""
    shape = f"Collection({current})"
    is_placeholder = segment.startswith("{") and segment.endswith("}")
    if args is None and not is_placeholder and _WORD.fullmatch(segment):
        if segment.lower() not in WELL_KNOWN_KEYS:
            prop = model.find_property(current, segment, ignore_case=True)
            if prop is not None:
                detail = f"'{prop.name}' is a property of each {current}: add a key before it"
            else:
                detail = _not_found(model, segment, current, shape, after_collection=True)
            problems.append(f"segment '{segment}': {detail}")
            return None
    if args is not None:
        problems.append(f"segment '{segment}': no operation '{name}' bound to {shape} in v1.0")
        return None
    return _key(model, position, segment, segment, problems)


def _not_found(
    model: GraphMetadata, name: str, current: str, shape: str, *, after_collection: bool = False
) -> str:
    what = (
        "not a key, type cast or operation bound to"
        if after_collection
        else "not a property, type cast or operation bound to"
    )
    detail = f"{what} {shape} in Graph v1.0"
    known = model.operations_named(name)
    if known:
        return f"{detail}; {_binding_hint(known, shape)}"
    if not after_collection and current:
        derived = model.derived_declaring(current, name)
        if derived:
            return (
                f"{detail}; it is declared on derived type(s) {', '.join(derived[:5])}: cast first"
            )
    if not any(name.lower() == p.lower() for t in model.structured for p in model.properties(t)):
        return f"{detail}; '{name}' is nowhere in the v1.0 metadata (beta only?)"
    return detail


def _binding_hint(ops: Iterable[Operation], shape: str) -> str:
    bindings = sorted({str(op.binding) for op in ops if op.binding is not None})
    names = sorted({op.qualified_name for op in ops})
    where = f"bound to {', '.join(bindings[:6])}" if bindings else "unbound"
    return f"{' / '.join(names)} exists in v1.0 but is {where}, not {shape}"


def _special(position: _Position, segment: str, problems: list[str]) -> _Position | None:
    if segment == "$count":
        if not position.collection:
            problems.append("segment '$count': only a collection can be counted")
        return _Position("count", "Edm.Int32", False, Capabilities(), position.nav_path)
    if segment == "$ref":
        if position.kind not in ("collection", "entity", "entitySet"):
            problems.append("segment '$ref': only navigation to entities has references")
        return _Position("ref", position.type_name, position.collection, Capabilities(), "")
    return _Position("value", position.type_name, False, Capabilities(), "")


def _property(model: GraphMetadata, position: _Position, prop: PropertyDef) -> _Position:
    current = position.type_name or ""
    nav_path = f"{position.nav_path}/{prop.name}" if prop.navigation else ""
    caps = model.capabilities_for(
        nav_path, f"{current}/{prop.name}", f"{prop.declared_on}/{prop.name}"
    )
    if not prop.navigation:
        kind = "property"
    else:
        kind = "collection" if prop.type.collection else "entity"
    return _Position(
        kind=kind,
        type_name=prop.type.name,
        collection=prop.type.collection,
        caps=caps,
        nav_path=nav_path,
        query=dict(caps.query_options),
    )


def _cast(
    model: GraphMetadata, position: _Position, cast: str, segment: str, problems: list[str]
) -> _Position | None:
    current = position.type_name or ""
    if not model.is_same_or_derived(cast, current):
        problems.append(
            f"segment '{segment}': type cast to {cast}, which is neither {current} nor derived "
            "from it"
        )
        return None
    constraint = position.caps.derived_types
    if constraint is not None and cast != current and cast not in constraint:
        problems.append(
            f"segment '{segment}': {cast} is not allowed here (DerivedTypeConstraint: "
            f"{', '.join(sorted(constraint))})"
        )
    # The set's Readable=false means "not without a cast"; the rest carries over.
    caps = Capabilities(
        readable=None,
        readable_by_key=position.caps.readable_by_key,
        insertable=position.caps.insertable,
        updatable=position.caps.updatable,
        deletable=position.caps.deletable,
        indexable_by_key=position.caps.indexable_by_key,
        query_options=dict(position.caps.query_options),
    )
    kind = "collection" if position.collection else position.kind
    if kind in ("entitySet", "singleton"):
        kind = "entity"
    return _Position(
        kind=kind,
        type_name=cast,
        collection=position.collection,
        caps=caps,
        nav_path=position.nav_path,
        by_key=position.by_key,
        query=dict(position.query),
    )


def _operation(
    model: GraphMetadata,
    position: _Position,
    op: Operation,
    args: str | None,
    segment: str,
    problems: list[str],
) -> _Position:
    if args is not None:
        if op.kind == "action":
            problems.append(f"segment '{segment}': action parameters go in the body, not the URL")
        else:
            for pair in _split_top_level(args):
                param_name = pair.partition("=")[0].strip()
                if param_name and op.parameter(param_name) is None:
                    problems.append(
                        f"segment '{segment}': unknown parameter '{param_name}' of "
                        f"{op.qualified_name}"
                    )
    returns = op.return_type
    return _Position(
        kind=op.kind,
        type_name=returns.name if returns else None,
        collection=returns.collection if returns else False,
        caps=Capabilities(),
        nav_path="",
        operation=op,
        query=dict(position.query) if op.kind == "function" else {},
    )


def _method_problems(method: str, position: _Position) -> list[str]:
    kind = position.kind
    shape = f"Collection({position.type_name})" if position.collection else str(position.type_name)
    caps = position.caps
    if method not in _METHODS:
        return [f"unsupported HTTP method {method}"]
    if kind == "action":
        name = position.operation.qualified_name if position.operation else "?"
        return [] if method == "POST" else [f"{method} on action {name}: actions take POST"]
    if kind == "function":
        name = position.operation.qualified_name if position.operation else "?"
        return [] if method == "GET" else [f"{method} on function {name}: functions take GET"]
    if kind == "count":
        return [] if method == "GET" else [f"{method} on $count: only GET"]
    if kind in ("ref", "value"):
        return []
    if method == "GET":
        return _read_problems(position, shape)
    if method == "POST":
        if not position.collection or kind == "property":
            return [
                f"POST to {kind} {shape}: POST needs an entity collection (create) or an action"
            ]
        if caps.insertable is False:
            return [f"POST to {shape}: not insertable here (InsertRestrictions/Insertable=false)"]
        return []
    if method in ("PATCH", "PUT"):
        if position.collection and kind != "property":
            return [f"{method} on a collection ({shape}): update needs a single entity (add a key)"]
        updatable = (position.by_key or caps).updatable
        if updatable is False or caps.updatable is False:
            return [f"{method} on {shape}: not updatable here (UpdateRestrictions/Updatable=false)"]
        return []
    # DELETE
    if position.collection:
        return [f"DELETE on a collection ({shape}): DELETE needs a single entity (add a key)"]
    if kind == "singleton":
        return [f"DELETE on singleton {shape}: a singleton cannot be deleted"]
    if kind == "property":
        return [f"DELETE on property of type {shape}: only entities are deleted"]
    deletable = (position.by_key or caps).deletable
    if deletable is False or caps.deletable is False:
        return [f"DELETE on {shape}: not deletable here (DeleteRestrictions/Deletable=false)"]
    return []


def _read_problems(position: _Position, shape: str) -> list[str]:
    problems: list[str] = []
    if position.caps.navigable is False:
        problems.append(f"GET {shape}: not navigable here (NavigationRestrictions/None)")
    if position.caps.readable is False:
        problems.append(f"GET {shape}: not readable here (ReadRestrictions/Readable=false)")
    if position.by_key is not None and position.by_key.readable_by_key is False:
        problems.append(
            f"GET {shape} by key: not readable by key here (ReadByKeyRestrictions/Readable=false)"
        )
    return problems


# --- checking bodies -----------------------------------------------------------------------


class _BodyChecker:
    def __init__(self, model: GraphMetadata, mode: str) -> None:
        self.model = model
        self.mode = mode  # "create", "update" or "action"
        self.problems: list[str] = []

    def value(self, value: Any, ref: TypeRef, where: str, *, top: bool = False) -> None:
        if value is None:
            if not ref.nullable and not ref.collection:
                self.problems.append(f"{where}: null for non-nullable {ref}")
            return
        if ref.collection:
            if not isinstance(value, list):
                self.problems.append(
                    f"{where}: expected a JSON array for {ref}, got {_kind(value)}"
                )
                return
            element = TypeRef(ref.name, False, True)
            for index, item in enumerate(value):
                self.value(item, element, f"{where}[{index}]")
            return
        name = ref.name
        if name in self.model.enums:
            self.enum(value, self.model.enums[name], where)
        elif name in self.model.structured:
            self.object(value, name, where, top=top)
        elif name.startswith("Edm."):
            self.primitive(value, name, where)
        else:
            self.problems.append(f"{where}: type {name} is not in the metadata")

    def enum(self, value: Any, enum: EnumType, where: str) -> None:
        if not isinstance(value, str):
            self.problems.append(f"{where}: expected a member name of {enum.name}, got {value!r}")
            return
        lowered = {m.lower() for m in enum.members}
        parts = [p.strip() for p in value.split(",")] if enum.is_flags else [value]
        for part in parts:
            if part.lower() not in lowered:
                self.problems.append(
                    f"{where}: {part!r} is not a member of {enum.name} ({', '.join(enum.members)})"
                )

    def primitive(self, value: Any, name: str, where: str) -> None:
        if name in _STRING_KINDS:
            if not isinstance(value, str):
                self.problems.append(f"{where}: expected a string for {name}, got {_kind(value)}")
                return
            error = _string_format_error(value, name)
            if error:
                self.problems.append(f"{where}: {error}")
        elif name in _INTEGER_KINDS:
            if isinstance(value, bool) or not isinstance(value, int):
                self.problems.append(f"{where}: expected an integer for {name}, got {_kind(value)}")
        elif name in _NUMBER_KINDS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.problems.append(f"{where}: expected a number for {name}, got {_kind(value)}")
        elif name == "Edm.Boolean":
            if not isinstance(value, bool):
                self.problems.append(f"{where}: expected true/false for {name}, got {_kind(value)}")
        # Edm.Untyped, Edm.Stream, Edm.Geography*: anything goes.

    def object(self, value: Any, type_name: str, where: str, *, top: bool = False) -> None:
        if not isinstance(value, dict):
            self.problems.append(
                f"{where}: expected a JSON object ({type_name}), got {_kind(value)}"
            )
            return
        actual = type_name
        declared = value.get("@odata.type")
        if declared is not None:
            cast = self.model.find_type(str(declared).lstrip("#"))
            if cast is None or cast not in self.model.structured:
                self.problems.append(f"{where}.@odata.type: unknown type {declared!r}")
            elif not self.model.is_same_or_derived(cast, type_name):
                self.problems.append(
                    f"{where}.@odata.type: {cast} is neither {type_name} nor derived from it"
                )
            else:
                actual = cast
        structured = self.model.structured[actual]
        if structured.abstract and declared is None and not (top and self.mode == "update"):
            derived = ", ".join(self.model.derived_types(actual)[:6])
            self.problems.append(
                f"{where}: {actual} is abstract; add @odata.type naming one of: {derived}"
            )
        props = self.model.properties(actual)
        for key, item in value.items():
            if "@" in key:
                self.annotation(key, item, actual, props, where)
                continue
            prop = props.get(key)
            if prop is None:
                self.problems.append(f"{where}.{key}: {self.unknown(key, actual, props)}")
                continue
            caps = self.model.capabilities_for(f"{actual}/{key}", f"{prop.declared_on}/{key}")
            if caps.computed:
                self.problems.append(f"{where}.{key}: read-only on {actual} (Core.Computed)")
            self.value(item, prop.type, f"{where}.{key}")

    def unknown(self, key: str, type_name: str, props: Mapping[str, PropertyDef]) -> str:
        message = f"unknown property on {type_name}"
        close = [name for name in props if name.lower() == key.lower()]
        if close:
            return f"{message} (did you mean '{close[0]}'?)"
        derived = self.model.derived_declaring(type_name, key)
        if derived:
            return f"{message} (declared on {', '.join(derived[:4])}: set @odata.type)"
        return message

    def annotation(
        self,
        key: str,
        item: Any,
        type_name: str,
        props: Mapping[str, PropertyDef],
        where: str,
    ) -> None:
        prop_name, _, term = key.partition("@")
        if not prop_name:
            if "." not in term:
                self.problems.append(f"{where}.{key}: not an OData instance annotation")
            return
        prop = props.get(prop_name)
        if prop is None:
            self.problems.append(f"{where}.{key}: annotates unknown property on {type_name}")
            return
        if term == "odata.bind":
            if not prop.navigation:
                self.problems.append(
                    f"{where}.{key}: @odata.bind needs a navigation property; "
                    f"'{prop_name}' is structural"
                )
            elif prop.type.collection != isinstance(item, list):
                expected = "an array of URLs" if prop.type.collection else "one URL"
                self.problems.append(f"{where}.{key}: expected {expected}")
        elif "." not in term:
            self.problems.append(f"{where}.{key}: not an OData annotation")


def _string_format_error(value: str, name: str) -> str | None:
    if name == "Edm.DateTimeOffset":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not an ISO 8601 date and time ({name})"
        if "T" not in value or not _OFFSET.search(value):
            return f"{value!r} needs a time and a UTC offset or Z ({name})"
    elif name == "Edm.Date" and not _DATE.fullmatch(value):
        return f"{value!r} is not a date YYYY-MM-DD ({name})"
    elif name == "Edm.TimeOfDay" and not _TIME.fullmatch(value):
        return f"{value!r} is not a time of day hh:mm:ss ({name})"
    elif name == "Edm.Guid" and not _GUID.fullmatch(value):
        return f"{value!r} is not a GUID ({name})"
    elif name == "Edm.Duration" and not _DURATION.fullmatch(value):
        return f"{value!r} is not an ISO 8601 duration ({name})"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_body(model: GraphMetadata, method: str, resolution: Resolution, body: Any) -> list[str]:
    kind = resolution.kind
    if method in ("GET", "DELETE"):
        return [] if body is None else [f"body: {method} must not carry a body"]
    if kind in ("ref", "value"):
        return []
    if kind == "action" and resolution.operation is not None:
        return _check_action_body(model, resolution.operation, body)
    if kind == "function":
        return [] if body is None else ["body: functions take no body"]
    type_name = resolution.type_name
    if type_name is None:
        return []
    if body is None:
        return [f"body: {method} needs a body ({type_name})"]
    mode = "create" if method == "POST" else "update"
    checker = _BodyChecker(model, mode)
    checker.value(body, TypeRef(type_name, False, True), "body", top=True)
    return checker.problems


def _check_action_body(model: GraphMetadata, op: Operation, body: Any) -> list[str]:
    if body is None:
        missing = [p.name for p in op.parameters if not p.optional and not p.type.nullable]
        if missing:
            return [f"body: missing required parameter(s) {', '.join(missing)} of {op.name}"]
        return []
    if not isinstance(body, dict):
        return [f"body: expected a JSON object of {op.name}'s parameters, got {_kind(body)}"]
    checker = _BodyChecker(model, "action")
    names = ", ".join(p.name for p in op.parameters) or "none"
    for key, item in body.items():
        param = op.parameter(key)
        if param is None:
            checker.problems.append(
                f"body.{key}: unknown parameter of {op.qualified_name} (parameters: {names})"
            )
            continue
        checker.value(item, param.type, f"body.{key}")
    given = {key.lower() for key in body}
    for param in op.parameters:
        if not param.optional and not param.type.nullable and param.name.lower() not in given:
            checker.problems.append(f"body: missing required parameter {param.name}")
    return checker.problems


# --- checking the query --------------------------------------------------------------------


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _check_query(
    model: GraphMetadata, method: str, resolution: Resolution, query: Mapping[str, str]
) -> list[str]:
    problems: list[str] = []
    type_name = resolution.type_name
    structured = type_name if type_name in model.structured else None
    given = {name.lower().lstrip("$") for name in query}
    allowed = {name.lower() for name in resolution.allowed_query} | GENERIC_QUERY_OPTIONS
    for raw_name, value in query.items():
        name = raw_name.lower().lstrip("$")
        where = f"query {raw_name}"
        if raw_name.startswith("@"):
            continue  # parameter alias
        if name in SYSTEM_QUERY_OPTIONS:
            problems.extend(_check_system_option(model, name, value, structured, where))
        elif raw_name.startswith("$"):
            problems.append(f"{where}: unknown system query option")
        elif name not in allowed:
            if resolution.operation is None or resolution.operation.parameter(name) is None:
                problems.append(f"{where}: unknown query option for this path")
    if method == "GET":
        for required in sorted(resolution.required_query):
            if required.lower() not in given:
                problems.append(f"query: required query option '{required}' is missing")
    return problems


def _check_system_option(
    model: GraphMetadata, name: str, value: str, type_name: str | None, where: str
) -> list[str]:
    if name in ("top", "skip"):
        return [] if value.isdigit() else [f"{where}: expected a non-negative integer"]
    if name == "count":
        return [] if value.lower() in ("true", "false") else [f"{where}: expected true or false"]
    if type_name is None or name not in ("select", "expand", "orderby"):
        return []
    problems: list[str] = []
    for item in _split_top_level(value):
        if name == "select":
            problem = _property_path_problem(model, type_name, item, navigation=None)
        elif name == "expand":
            problem = _property_path_problem(model, type_name, item.split("(")[0], navigation=True)
        else:
            path = item.split()[0] if item.split() else item
            problem = _property_path_problem(model, type_name, path, navigation=False)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def _property_path_problem(
    model: GraphMetadata, type_name: str, path: str, *, navigation: bool | None
) -> str | None:
    """Check `prop`, `complex/prop` or `namespace.Type/prop` against `type_name`."""
    path = path.strip()
    if path in ("*", ""):
        return None
    parts = path.split("/")
    current = type_name
    if "." in parts[0]:
        cast = model.find_type(parts[0])
        if cast is None or not model.is_same_or_derived(cast, current):
            return f"'{parts[0]}' is not {current} or a type derived from it"
        current, parts = cast, parts[1:]
    for index, part in enumerate(parts):
        prop = model.find_property(current, part, ignore_case=True)
        if prop is None and index == 0:
            # Graph takes a derived type's property unqualified (`/me/manager?$select=mail`).
            derived = model.derived_declaring(current, part)
            if derived:
                prop = model.find_property(derived[0], part, ignore_case=True)
        if prop is None:
            return f"'{part}' is not a property of {current} or of a type derived from it"
        last = index == len(parts) - 1
        if last and navigation is True and not prop.navigation:
            return f"'{prop.name}' of {current} is not a navigation property ($expand)"
        if last and navigation is False and prop.navigation:
            return f"'{prop.name}' of {current} is a navigation property"
        if not last:
            if prop.type.name not in model.structured:
                return f"'{prop.name}' of {current} has no properties below it"
            current = prop.type.name
    return None


# --- the public checks ---------------------------------------------------------------------


def check_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: Mapping[str, str] | None = None,
    metadata: GraphMetadata | None = None,
) -> list[str]:
    """Problems of one Graph request against the v1.0 metadata; empty when it fits.

    `path` is relative to /v1.0 (`/me/events/{id}`) and may carry a query string.
    """
    model = metadata or load_metadata()
    method = method.upper()
    prefix = f"{method} {path}: "
    raw_path, _, query_string = path.partition("?")
    merged_query: dict[str, str] = dict(parse_qsl(query_string, keep_blank_values=True))
    merged_query.update(query or {})

    resolution = resolve(method, raw_path, metadata=model)
    problems = list(resolution.problems)
    if resolution.kind == "batch":
        problems.extend(_check_batch(model, body))
    elif resolution.kind not in ("unknown", "metadata"):
        problems.extend(_check_body(model, method, resolution, body))
        problems.extend(_check_query(model, method, resolution, merged_query))
    return [f"{prefix}{problem}" for problem in problems]


def check_url(
    method: str,
    url: str,
    body: Any = None,
    *,
    metadata: GraphMetadata | None = None,
) -> list[str]:
    """Like `check_request`, for a full URL or a `/v1.0/...` path as a fake server sees it."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith("/v1.0/") or path == "/v1.0":
        path = path[len("/v1.0") :] or "/"
    elif path.startswith("/beta/") or path == "/beta":
        return [f"{method.upper()} {url}: the beta endpoint is not allowed; use v1.0"]
    if parts.query:
        path = f"{path}?{parts.query}"
    return check_request(method, path, body, metadata=metadata)


def assert_valid_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: Mapping[str, str] | None = None,
    metadata: GraphMetadata | None = None,
) -> None:
    """Fail (AssertionError) with every problem when the request does not fit v1.0."""
    problems = check_request(method, path, body, query=query, metadata=metadata)
    if problems:
        raise AssertionError(
            "Graph request does not fit the v1.0 metadata:\n" + "\n".join(problems)
        )


def _check_batch(model: GraphMetadata, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return [f"body: expected a JSON object with 'requests', got {_kind(body)}"]
    problems = [f"body.{key}: unknown property of a batch" for key in body if key != "requests"]
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        return [*problems, "body.requests: expected a non-empty array of requests"]
    if len(requests) > MAX_BATCH_REQUESTS:
        problems.append(
            f"body.requests: {len(requests)} requests; Graph accepts at most "
            f"{MAX_BATCH_REQUESTS} per batch"
        )
    ids = [str(r.get("id")).lower() for r in requests if isinstance(r, dict) and "id" in r]
    for index, request in enumerate(requests):
        problems.extend(_check_batch_item(model, index, request, ids))
    return problems


def _check_batch_item(
    model: GraphMetadata, index: int, request: Any, ids: list[str]
) -> Iterator[str]:
    where = f"body.requests[{index}]"
    if not isinstance(request, dict):
        yield f"{where}: expected an object, got {_kind(request)}"
        return
    for key in request:
        if key not in _BATCH_REQUEST_KEYS:
            yield f"{where}.{key}: unknown property of a batch request"
    request_id = request.get("id")
    if not isinstance(request_id, str) or not request_id:
        yield f"{where}.id: required, a non-empty string"
    elif ids.count(request_id.lower()) > 1:
        yield f"{where}.id: {request_id!r} is not unique in the batch"
    method = request.get("method")
    url = request.get("url")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        yield f"{where}.method: expected one of {', '.join(sorted(_METHODS))}, got {method!r}"
        return
    if not isinstance(url, str) or not url:
        yield f"{where}.url: required, a URL relative to the version root"
        return
    if "://" in url or url.lstrip("/").split("/")[0].lower() in ("v1.0", "beta"):
        yield f"{where}.url: {url!r} must be relative to /v1.0 (like '/me/events')"
        return
    headers = request.get("headers")
    if headers is not None and not isinstance(headers, dict):
        yield f"{where}.headers: expected an object"
        headers = None
    if "body" in request and not any(
        str(name).lower() == "content-type" for name in (headers or {})
    ):
        yield f"{where}.headers: a request with a body needs a Content-Type header"
    depends = request.get("dependsOn")
    if depends is not None:
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            yield f"{where}.dependsOn: expected an array of request ids"
        else:
            for dependency in depends:
                if dependency.lower() not in ids:
                    yield f"{where}.dependsOn: no request with id {dependency!r}"
    inner_path = "/" + url.lstrip("/")
    if inner_path.split("?")[0].rstrip("/") == "/$batch":
        yield f"{where}.url: a batch cannot contain another batch"
        return
    for problem in check_request(method, inner_path, request.get("body"), metadata=model):
        yield f"{where}: {problem}"

"""Reads the policy documents (``policies/*.yaml``) into one validated :class:`ConfigDocument`.

Each YAML file holds some top-level sections; a section lives in exactly one file. The merged
document is checked against ``contracts/config/hub-config.schema.json`` and the semantic rules of
:mod:`hub.config.validate`, product contracts are read from ``contracts/``, and only then is the
typed model built. Any finding raises :class:`ConfigError` listing every issue, each as
``"<dir>/<file>: <json path>: <reason>"``.

YAML is read strictly: only ``true``/``false`` are booleans (``on``, ``no`` stay strings), dates
stay strings, and a key repeated in one mapping is an error instead of silently winning.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from adapters.base import (
    AdapterConfig,
    BreakerPolicy,
    Credentials,
    OutboundLimit,
    RetryPolicy,
    Timeouts,
)
from hub.config._adapters import adapter_contract_issues
from hub.config._contracts import operation_issues, schema_file_problem
from hub.config._permissions import operation_resource_issues
from hub.config.governance import governance_from_raw
from hub.config.model import (
    AuthSpec,
    BreakerSpec,
    ConfigDocument,
    HealthCheckSpec,
    IssuerSpec,
    PlanOverrideSpec,
    PlanRateSpec,
    PlanSpec,
    ProductSpec,
    PurposeReadSpec,
    PurposeSpec,
    QuotaSpec,
    RateLimitSpec,
    RetrySpec,
    RouteAdapterSpec,
    RoutePaymentsSpec,
    RouteSpec,
    SubscriptionSpec,
    TargetSpec,
    TimeoutSpec,
    UpstreamSpec,
)
from hub.config.validate import (
    Issue,
    format_path,
    load_validator,
    schema_issues,
    semantic_issues,
    shadow_issues,
)
from hub.errors import ConfigError
from hub.policy.model import (
    ConditionSpec,
    MaskSpec,
    ObligationSpec,
    PermissionSpec,
    ResourceSpec,
    RuleSpec,
    SubjectSpec,
)
from hub.policy.operations import Operation
from hub.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["config_checksum", "default_schema_path", "document_from_raw", "load_directory"]

_Spec = TypeVar("_Spec", bound="DataclassInstance")

_EXTENSIONS = ("consumers",)
_CONTRACT_FOLDER = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*")
_SCHEMA_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.json")
_CONTRACT_SCHEMA = "product-contract.schema.json"
_CONFIG_SCHEMA = "hub-config.schema.json"
_MAX_DEPTH = 64
_YAML_ONLY: dict[type, str] = {
    bytes: "binary data (!!binary)",
    set: "a set (!!set)",
    tuple: "a pair (!!omap or !!pairs)",
}


def default_schema_path() -> Path:
    """The schema of the policy documents shipped with the hub."""
    return PROJECT_ROOT / "contracts" / "config" / _CONFIG_SCHEMA


def config_checksum(raw: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, compact, UTF-8) of a merged document."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_directory(
    path: Path, *, schema_path: Path | None = None, contracts_dir: Path | None = None
) -> ConfigDocument:
    """Read every ``*.yaml``/``*.yml`` in ``path`` (sorted, dot-files skipped) as one document."""
    label_dir = path.resolve().name
    if not path.is_dir():
        raise ConfigError([f"{label_dir}: {path} is not a directory"])
    try:
        # Dot-files are skipped: editors leave lock and swap files named like the originals.
        files = sorted(
            (
                p
                for p in path.iterdir()
                if p.suffix in {".yaml", ".yml"} and not p.name.startswith(".") and p.is_file()
            ),
            key=lambda p: p.name,
        )
    except OSError as exc:
        raise ConfigError([f"{label_dir}: cannot list {path}: {exc.strerror}"]) from exc
    if not files:
        raise ConfigError([f"{label_dir}: no *.yaml or *.yml files in {path}"])

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for file in files:
        label = f"{label_dir}/{file.name}"
        data, file_problems = _read_yaml(file, label)
        problems.extend(file_problems)
        if data is None or file_problems:
            continue
        if not isinstance(data, dict):
            problems.append(
                f"{label}: $: the top level must be a mapping of sections, not {_kind(data)}"
            )
            continue
        for section, value in data.items():
            if section in sources:
                problems.append(
                    f"{label}: {format_path((section,))}: section {section!r}"
                    f" is already defined in {sources[section]}"
                )
            else:
                merged[section] = value
                sources[section] = label
    if problems:
        raise ConfigError(problems)
    return _validated(merged, sources, schema_path=schema_path, contracts_dir=contracts_dir)


def document_from_raw(
    raw: Mapping[str, Any], *, schema_path: Path | None = None, contracts_dir: Path | None = None
) -> ConfigDocument:
    """Validate an already merged document (e.g. read back from the database)."""
    issues: list[Issue] = []
    data = _jsonable(raw, (), issues)
    if issues:
        raise ConfigError([str(issue) for issue in issues])
    return _validated(data, {}, schema_path=schema_path, contracts_dir=contracts_dir)


# --- YAML ----------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, dates kept as text, and repeated keys recorded."""

    yaml_implicit_resolvers = {
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag not in {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    self.repeated.append((key_node.start_mark.line + 1, key_node.value))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _read_yaml(file: Path, label: str) -> tuple[Any, list[str]]:
    """The JSON data in one YAML file, or the reasons it cannot be used."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [f"{label}: not UTF-8 text"]
    except OSError as exc:
        return None, [f"{label}: cannot be read: {exc.strerror}"]
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or "unreadable"
        return None, [f"{label}: {where}invalid YAML: {what}"]
    except yaml.YAMLError as exc:
        return None, [f"{label}: invalid YAML: {exc}"]
    finally:
        loader.dispose()
    if loader.repeated:
        return None, [
            f"{label}: line {line}: key {key!r} appears twice in the same mapping"
            for line, key in loader.repeated
        ]
    issues: list[Issue] = []
    data = _jsonable(data, (), issues)
    return data, [f"{label}: {issue}" for issue in issues]


def _jsonable(value: Any, at: tuple[str | int, ...], issues: list[Issue]) -> Any:
    """A plain-JSON copy of ``value``; integer keys become text (``200:`` means ``"200"``)."""
    if len(at) > _MAX_DEPTH:
        issues.append(Issue(path=at, reason="nested too deeply (a recursive YAML alias?)"))
        return None
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        issues.append(Issue(path=at, reason=f"{value!r} is not a finite number"))
        return None
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
            if not isinstance(name, str):
                shown = json.dumps(key) if key is None or isinstance(key, bool | float) else key
                issues.append(Issue(path=at, reason=f"key {shown} is not text (quote it)"))
                continue
            out[name] = _jsonable(item, (*at, name), issues)
        return out
    if isinstance(value, list):
        return [_jsonable(item, (*at, index), issues) for index, item in enumerate(value)]
    what = _YAML_ONLY.get(type(value), f"a {type(value).__name__}")
    issues.append(Issue(path=at, reason=f"{what} is not JSON data"))
    return None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "a boolean" if isinstance(value, bool) else "a number"


# --- validation ----------------------------------------------------------------------------------


def _validated(
    raw: dict[str, Any],
    sources: Mapping[str, str],
    *,
    schema_path: Path | None,
    contracts_dir: Path | None,
) -> ConfigDocument:
    contracts_dir = contracts_dir or PROJECT_ROOT / "contracts"
    # The schema travels with the contracts (HUB_CONTRACTS_DIR), also in an installed hub.
    if schema_path is None:
        shipped = contracts_dir / "config" / _CONFIG_SCHEMA
        schema_path = shipped if shipped.is_file() else default_schema_path()
    issues = schema_issues(raw, load_validator(schema_path))
    issues += semantic_issues(raw)
    contract_schema = schema_path.with_name(_CONTRACT_SCHEMA)
    operations: dict[int, tuple[Operation, ...]] = {}
    issues += _contract_issues(raw, contracts_dir, contract_schema, operations)
    issues += operation_resource_issues(raw, operations)
    issues += adapter_contract_issues(
        raw, contracts_dir, lambda folder, label: _checked_contract(folder, label, contract_schema)
    )

    routes = raw.get("routes")
    if isinstance(routes, list) and not any(i.path == ("routes",) for i in issues):
        broken = {i.path[1] for i in issues if len(i.path) > 1 and i.path[0] == "routes"}
        specs = [
            _route(item, order=index, source=sources.get("routes", ""))
            for index, item in enumerate(routes)
            if index not in broken
        ]
        issues += shadow_issues(specs)

    if issues:
        # Stable: findings at one position keep their order (schema first, then semantics).
        ordered = sorted(issues, key=lambda i: (_label(i, sources), i.position()))
        raise ConfigError([_prefixed(issue, sources) for issue in ordered])
    return _document(raw, sources, operations)


def _label(issue: Issue, sources: Mapping[str, str]) -> str:
    section = issue.path[0] if issue.path else None
    return sources.get(section, "") if isinstance(section, str) else ""


def _prefixed(issue: Issue, sources: Mapping[str, str]) -> str:
    label = _label(issue, sources)
    return f"{label}: {issue}" if label else str(issue)


def _contract_issues(
    raw: Mapping[str, Any],
    contracts_dir: Path,
    contract_schema: Path,
    operations: dict[int, tuple[Operation, ...]],
) -> list[Issue]:
    """Each product's contract folder exists and holds a valid ``api.yaml`` and its schemas.

    The operations of each valid contract go into ``operations``, by product position.
    """
    issues: list[Issue] = []
    products = raw.get("products")
    if not isinstance(products, list):
        return issues
    root = contracts_dir.resolve()
    for index, product in enumerate(products):
        folder = product.get("contract") if isinstance(product, dict) else None
        # A malformed name is already a schema finding; never touch the file system with it.
        if not isinstance(folder, str) or not _CONTRACT_FOLDER.fullmatch(folder):
            continue
        at: tuple[str | int, ...] = ("products", index, "contract")
        shown = f"{root.name}/{folder}"
        where = root / folder
        if {".", ".."} & set(folder.split("/")):
            issues.append(
                Issue(
                    path=at,
                    reason=f"{folder!r} must name a folder inside {root.name}/"
                    " without '.' or '..' segments",
                )
            )
        elif not where.is_dir():
            issues.append(Issue(path=at, reason=f"contract folder '{shown}' does not exist"))
        elif not (where / "api.yaml").is_file():
            issues.append(Issue(path=at, reason=f"'{shown}/api.yaml' does not exist"))
        else:
            findings = _contract_findings(
                where, f"{shown}/api.yaml", contract_schema, operations, index
            )
            issues.extend(Issue(path=at, reason=finding) for finding in findings)
    return issues


def _contract_findings(
    folder: Path,
    label: str,
    contract_schema: Path,
    operations: dict[int, tuple[Operation, ...]],
    product: int,
) -> list[str]:
    """A product contract's findings; its operations go into ``operations`` when it has none."""
    contract, findings = _checked_contract(folder, label, contract_schema)
    if not findings and isinstance(contract, dict):
        operations[product] = tuple(
            Operation(id=op["operation_id"], method=op["method"].upper(), path=op["path"])
            for op in contract.get("operations") or []
            if isinstance(op.get("operation_id"), str)
        )
    return findings


def _checked_contract(folder: Path, label: str, contract_schema: Path) -> tuple[Any, list[str]]:
    """A contract's ``api.yaml`` as data, and every finding in it and its schema files."""
    contract, problems = _read_yaml(folder / "api.yaml", label)
    if problems:
        return contract, problems
    if not isinstance(contract, dict):
        return contract, [f"{label}: $: the top level must be a mapping, not {_kind(contract)}"]
    issues = schema_issues(contract, load_validator(contract_schema), top_level="field")
    issues += operation_issues(contract)
    findings = [f"{label}: {issue}" for issue in sorted(issues, key=Issue.position)]
    for index, operation in enumerate(contract.get("operations") or []):
        if not isinstance(operation, dict):
            continue
        named: list[tuple[tuple[str | int, ...], Any]] = [
            (("operations", index, "request"), operation.get("request"))
        ]
        responses = operation.get("responses")
        if isinstance(responses, dict):
            named += [(("operations", index, "responses", k), v) for k, v in responses.items()]
        for at, name in named:
            if isinstance(name, str) and _SCHEMA_FILE.fullmatch(name):
                problem = schema_file_problem(folder / name)
                if problem:
                    shown = label.rsplit("/", 1)[0] + "/" + name
                    findings.append(f"{shown}: {problem} (named at {format_path(at)})")
    return contract, findings


# --- the typed model -----------------------------------------------------------------------------


def _spec(cls: type[_Spec], data: Mapping[str, Any]) -> _Spec:
    """A flat spec from schema-valid JSON: absent keys take the dataclass defaults."""
    kwargs: dict[str, Any] = {}
    for field in fields(cls):
        if field.name in data:
            value = data[field.name]
            if field.type in ("float", float) and isinstance(value, int):
                value = float(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[field.name] = value
    return cls(**kwargs)


def _unique_in_order(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _upstream(item: Mapping[str, Any]) -> UpstreamSpec:
    data = dict(item, targets=[_spec(TargetSpec, target) for target in item["targets"]])
    if "health_check" in item:
        data["health_check"] = _spec(HealthCheckSpec, item["health_check"])
    if "breaker" in item:
        data["breaker"] = _spec(BreakerSpec, item["breaker"])
    return _spec(UpstreamSpec, data)


def _route(item: Mapping[str, Any], *, order: int, source: str) -> RouteSpec:
    data = dict(
        item,
        hosts=_unique_in_order([host.lower() for host in item.get("hosts", [])]),
        methods=_unique_in_order([method.upper() for method in item.get("methods", [])]),
        headers=tuple(sorted((k.lower(), v) for k, v in item.get("headers", {}).items())),
        order=order,
        source=source,
    )
    for name, nested in (("timeouts", TimeoutSpec), ("retries", RetrySpec)):
        if name in item:
            data[name] = _spec(nested, item[name])
    if "rate_limit" in item:
        data["rate_limit"] = _spec(RateLimitSpec, item["rate_limit"])
    if "auth" in item:
        data["auth"] = _spec(AuthSpec, item["auth"])
    if "adapter" in item:
        data["adapter"] = _spec(RouteAdapterSpec, item["adapter"])
    if "payments" in item:
        data["payments"] = _spec(RoutePaymentsSpec, item["payments"])
    return _spec(RouteSpec, data)


def _adapter(item: Mapping[str, Any]) -> AdapterConfig:
    """An adapter's configuration; its credentials name a secret, resolved only at run time."""
    data: dict[str, Any] = dict(item)
    data.pop("description", None)
    credentials = item.get("credentials")
    if credentials is not None:
        data["credentials"] = Credentials(
            scheme=credentials["scheme"],
            secret_name=credentials["secret"],
            header=credentials.get("header", "X-API-Key"),
            username=credentials.get("username", ""),
        )
    if "timeouts" in item:
        data["timeouts"] = _spec(Timeouts, item["timeouts"])
    if "retries" in item:
        data["retry"] = _spec(RetryPolicy, item["retries"])
        del data["retries"]
    if "breaker" in item:
        data["breaker"] = _spec(BreakerPolicy, item["breaker"])
    if "rate_limit" in item:
        data["rate_limit"] = _spec(OutboundLimit, item["rate_limit"])
    data["options"] = json.loads(json.dumps(item.get("options", {})))
    return AdapterConfig(**data)


def _purpose(item: Mapping[str, Any]) -> PurposeSpec:
    return PurposeSpec(
        id=item["id"],
        description=item["description"],
        legal_basis=item.get("legal_basis", ""),
        reads=tuple(
            PurposeReadSpec(
                adapter=read["adapter"], operation=read["operation"], fields=tuple(read["fields"])
            )
            for read in item["reads"]
        ),
        principals=tuple(_spec(SubjectSpec, p) for p in item["principals"]),
    )


def _condition(item: Mapping[str, Any]) -> ConditionSpec:
    value = item.get("value")
    # Numbers in YAML are compared as their text: path parameters and queries are text.
    if isinstance(value, list):
        value = tuple(str(v) for v in value)
    elif value is not None:
        value = str(value)
    return ConditionSpec(
        attr=item["attr"], op=item["op"], value=value, ref=item.get("ref"), tz=item.get("tz", "UTC")
    )


def _rule(item: Mapping[str, Any]) -> RuleSpec:
    obligations = item.get("obligations", {})
    return RuleSpec(
        id=item["id"],
        effect=item["effect"],
        description=item.get("description", ""),
        subjects=_spec(SubjectSpec, item.get("subjects", {})),
        resources=_spec(ResourceSpec, item.get("resources", {})),
        conditions=tuple(_condition(c) for c in item.get("conditions", [])),
        obligations=ObligationSpec(
            mask=tuple(_spec(MaskSpec, m) for m in obligations.get("mask", [])),
            drop=tuple(obligations.get("drop", [])),
        ),
    )


def _permission(item: Mapping[str, Any]) -> PermissionSpec:
    return PermissionSpec(
        id=item["id"],
        description=item.get("description", ""),
        routes=tuple(item.get("routes", [])),
        products=tuple(item.get("products", [])),
        rules=tuple(_rule(rule) for rule in item["rules"]),
    )


def _product(item: Mapping[str, Any]) -> ProductSpec:
    data = dict(item)
    if "subscription" in item:
        data["subscription"] = _spec(SubscriptionSpec, item["subscription"])
    return _spec(ProductSpec, data)


def _terms(item: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if "rate" in item:
        data["rate"] = _spec(PlanRateSpec, item["rate"])
    if "quota" in item:
        data["quota"] = _spec(QuotaSpec, item["quota"])
    return data


def _plan(item: Mapping[str, Any]) -> PlanSpec:
    overrides = tuple(
        (product, PlanOverrideSpec(**_terms(override)))
        for product, override in item.get("overrides", {}).items()
    )
    return PlanSpec(
        id=item["id"],
        title=item["title"],
        description=item.get("description", ""),
        overrides=overrides,
        **_terms(item),
    )


def _document(
    raw: dict[str, Any],
    sources: Mapping[str, str],
    operations: Mapping[int, tuple[Operation, ...]],
) -> ConfigDocument:
    return ConfigDocument(
        upstreams=tuple(_upstream(item) for item in raw.get("upstreams", [])),
        routes=tuple(
            _route(item, order=index, source=sources.get("routes", ""))
            for index, item in enumerate(raw.get("routes", []))
        ),
        products=tuple(
            replace(_product(item), operations=operations.get(index, ()))
            for index, item in enumerate(raw.get("products", []))
        ),
        issuers=tuple(_spec(IssuerSpec, item) for item in raw.get("issuers", [])),
        permissions=tuple(_permission(item) for item in raw.get("permissions", [])),
        adapters=tuple(_adapter(item) for item in raw.get("adapters", [])),
        purposes=tuple(_purpose(item) for item in raw.get("purposes", [])),
        governance=governance_from_raw(raw),
        plans=tuple(_plan(item) for item in raw.get("plans", [])),
        extensions={name: json.loads(json.dumps(raw.get(name, []))) for name in _EXTENSIONS},
        raw=raw,
        checksum=config_checksum(raw),
    )

"""The deployment files agree with the code: image, chart, alert rules and dashboard.

Docker, Helm and Prometheus are not needed: plain YAML and JSON are parsed, Go templates are
checked for balanced actions and for the helpers and values they name, and every metric and
label that a PromQL expression selects must be one the hub exports.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from hub.config.model import TargetSpec, UpstreamSpec
from hub.ops.metrics import Metrics
from hub.settings import Settings
from hub.upstream.pool import UpstreamPool

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "hub"
TEMPLATES = CHART / "templates"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "container" / "Dockerfile.dockerignore"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "hub-dashboard.json"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Labels Prometheus attaches to every scraped series (target labels), not exported by the hub.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container"})
# Series the rules and dashboard read from elsewhere: Prometheus's own scrape health and
# kube-state-metrics' pod readiness (the hub exports no readiness metric).
EXTERNAL_METRICS: dict[str, frozenset[str]] = {
    "up": frozenset(),
    "kube_pod_status_ready": frozenset({"condition", "uid"}),
}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def _templated(path: Path) -> bool:
    return TEMPLATES in path.parents


def _deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


def _values() -> dict[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(values, dict)
    return values


# --- the hub's metrics -------------------------------------------------------------------------


def _hub_metrics() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Every sample name the hub's registry can produce with its labels, and each family's."""
    pool = UpstreamPool(UpstreamSpec(id="echo", targets=(TargetSpec(url="http://127.0.0.1:9101"),)))
    metrics = Metrics(pools=lambda: {"echo": pool})
    # Labelled families without children have no samples yet; their label names come from the
    # wrappers (private attributes, but prometheus_client has kept them for years).
    wrapper_labels = {
        m._name: frozenset(m._labelnames)
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
    }
    samples: dict[str, frozenset[str]] = {}
    families: dict[str, frozenset[str]] = {}
    for family in metrics.registry.collect():
        labels = wrapper_labels.get(family.name, frozenset())
        for sample in family.samples:
            labels |= frozenset(sample.labels) - {"le"}
        names = [family.name + suffix for suffix in _SUFFIXES[family.type]]
        families[family.name] = frozenset(names)
        for name in names:
            samples[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return samples, families


HUB_METRICS, HUB_FAMILIES = _hub_metrics()


def test_the_hub_exports_the_metrics_the_deployment_relies_on() -> None:
    for name in (
        "hub_requests_total",
        "hub_request_duration_seconds_bucket",
        "hub_upstream_duration_seconds_bucket",
        "hub_upstream_errors_total",
        "hub_rate_limited_total",
        "hub_limiter_unavailable_total",
        "hub_config_version",
        "hub_config_reloads_total",
        "hub_breaker_transitions_total",
        "hub_upstream_target_healthy",
        "hub_upstream_breaker_state",
        "hub_upstream_outstanding_requests",
    ):
        assert name in HUB_METRICS
    assert HUB_METRICS["hub_requests_total"] == {"route", "method", "status"}
    assert HUB_METRICS["hub_upstream_breaker_state"] == {"upstream", "target"}
    assert HUB_METRICS["hub_request_duration_seconds_bucket"] == {"route", "le"}


# --- PromQL, read just enough to find metric and label names ------------------------------------

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})


def _balanced(text: str, pairs: str = "(){}[]") -> bool:
    stack: list[str] = []
    closing = {pairs[i + 1]: pairs[i] for i in range(0, len(pairs), 2)}
    for char in text:
        if char in pairs[::2]:
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            return False
    return not stack


def _parse_promql(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """Metric names with the labels their selectors match on, and the grouping labels."""
    text = _STRING.sub('""', expr)
    assert _balanced(text), f"unbalanced brackets in {expr!r}"
    selected: dict[str, set[str]] = {}
    grouping: set[str] = set()
    for name, matchers in _SELECTOR.findall(text):
        labels = set(_MATCHER.findall(matchers))
        if name:
            selected.setdefault(name, set()).update(labels)
        else:  # {__name__="..."} selectors are not used here
            assert "__name__" not in labels
    text = _SELECTOR.sub(lambda m: m.group(1) or "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    for _, labels in _GROUPING.findall(text):
        grouping.update(label.strip() for label in labels.split(",") if label.strip())
    text = _GROUPING.sub("", text)
    for name in _IDENT.findall(text):
        if name.lower() not in _KEYWORDS:
            selected.setdefault(name, set())
    return selected, grouping


def test_promql_reader() -> None:
    selected, grouping = _parse_promql(
        "histogram_quantile(0.99, sum by (route, le) (rate(hub_request_duration_seconds_bucket"
        '{job="hub", route=~"a|b"}[$__rate_interval]))) > 1 and on (pod) up == 0'
    )
    assert selected == {"hub_request_duration_seconds_bucket": {"job", "route"}, "up": set()}
    assert grouping == {"route", "le", "pod"}


def _check_expr(expr: str, where: str) -> set[str]:
    selected, grouping = _parse_promql(expr)
    assert selected, f"{where}: no metric in {expr!r}"
    known = {**HUB_METRICS, **EXTERNAL_METRICS}
    available = set(TARGET_LABELS)
    for name, labels in selected.items():
        assert name in known, f"{where}: {name} is not a metric the hub exports"
        assert labels <= known[name] | TARGET_LABELS, (
            f"{where}: {name} has no label(s) {sorted(labels - known[name] - TARGET_LABELS)}"
        )
        available |= known[name]
    assert grouping <= available, f"{where}: grouping by unknown {sorted(grouping - available)}"
    return set(selected)


# --- alert rules ---------------------------------------------------------------------------------


def _rules() -> Iterator[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    for group in document["groups"]:
        assert group["name"]
        assert group["rules"]
        yield from group["rules"]


def test_alert_rules_are_well_formed() -> None:
    names = [rule["alert"] for rule in _rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_alert_rules_use_only_the_hubs_metrics() -> None:
    used: set[str] = set()
    for rule in _rules():
        used |= _check_expr(rule["expr"], rule["alert"])
    # The required alerts: 5xx ratio, p99, breaker, health, limiter, reloads, down/not ready.
    for name in (
        "hub_requests_total",
        "hub_request_duration_seconds_bucket",
        "hub_upstream_breaker_state",
        "hub_upstream_target_healthy",
        "hub_limiter_unavailable_total",
        "hub_config_reloads_total",
        "up",
        "kube_pod_status_ready",
    ):
        assert name in used, f"no alert reads {name}"


# --- dashboard -----------------------------------------------------------------------------------


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)", query)
            assert match, f"variable {variable['name']}: {query!r}"
            yield f"variable {variable['name']}", match.group(1)


def test_dashboard_is_valid_and_shows_every_hub_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    used: set[str] = set()
    for where, expr in _dashboard_exprs():
        used |= _check_expr(expr, where)
        for name in re.findall(r"\$(?!__)(\w+)", expr):
            assert name in variables, f"{where}: ${name} is not a dashboard variable"
    unseen = sorted(family for family, names in HUB_FAMILIES.items() if not names & used)
    assert not unseen, f"the dashboard shows nothing of {unseen}"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


# --- YAML and the Helm chart ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [p for p in _deploy_files(".yaml", ".yml") if not _templated(p)],
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_plain_yaml_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents
    assert all(isinstance(d, dict) for d in documents)


_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_OPENERS = ("if", "range", "with", "define", "block")


@pytest.mark.parametrize(
    "path", sorted(p for p in TEMPLATES.iterdir() if p.is_file()), ids=lambda p: p.name
)
def test_template_actions_are_balanced(path: Path) -> None:
    text = path.read_text()
    outside = _ACTION.sub("", text)
    assert "{{" not in outside
    assert "}}" not in outside
    stack: list[str] = []
    for action in _ACTION.findall(text):
        body = action.strip("-").strip()
        if body.startswith("/*"):
            assert body.endswith("*/"), f"unterminated comment in {path.name}"
            continue
        keyword = body.split(None, 1)[0] if body else ""
        if keyword in _OPENERS:
            stack.append(keyword)
        elif keyword == "end":
            assert stack, f"{path.name}: 'end' without an opening action"
            stack.pop()
        elif keyword == "else":
            assert stack[-1:] in (["if"], ["with"], ["range"]), f"{path.name}: stray else"
    assert not stack, f"{path.name}: unclosed {stack}"


def test_templates_name_defined_helpers_and_existing_values() -> None:
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    defined = set(re.findall(r'define\s+"([^"]+)"', helpers))
    values = _values()
    for path in sorted(TEMPLATES.iterdir()):
        text = path.read_text()
        for name in re.findall(r'include\s+"([^"]+)"', text):
            assert name in defined, f"{path.name}: include of undefined {name!r}"
        for dotted in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node: Any = values
            for key in dotted.strip(".").split("."):
                assert isinstance(node, dict), f"{path.name}: .Values{dotted}"
                assert key in node, f"{path.name}: .Values{dotted} is not in values.yaml"
                node = node[key]


def test_chart_metadata_matches_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "hub"
    assert chart["appVersion"] == PYPROJECT["project"]["version"]


def test_values_keep_the_operational_promises() -> None:
    values = _values()
    assert values["replicaCount"] == 3
    assert values["autoscaling"]["minReplicas"] >= values["replicaCount"]
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["podSecurityContext"]["runAsUser"] != 0
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    # Single-process pods: the SIGTERM drain is wired for one server per process.
    assert values["hub"]["workers"] == 1
    drain = values["preStopSleepSeconds"] + values["hub"]["shutdownGraceSeconds"]
    assert values["preStopSleepSeconds"] == 5
    if values["terminationGracePeriodSeconds"] is not None:
        assert values["terminationGracePeriodSeconds"] > drain
    # The secrets have no defaults: nothing sensitive ships in the chart.
    assert not any(v for k, v in values["secrets"].items() if k != "existingSecret")


def _block(text: str, key: str) -> str:
    """The indented block under ``key:`` in a template."""
    match = re.search(rf"^( *){key}:\n((?:\1 +.*\n)+)", text, re.MULTILINE)
    assert match, f"no {key} block"
    return match.group(2)


def test_deployment_probes_drain_and_secrets() -> None:
    deployment = (TEMPLATES / "deployment.yaml").read_text()
    assert "path: /healthz" in _block(deployment, "livenessProbe")
    assert "path: /readyz" in _block(deployment, "readinessProbe")
    assert '["sleep", {{ .Values.preStopSleepSeconds | quote }}]' in _block(deployment, "preStop")
    assert 'include "hub.terminationGracePeriodSeconds"' in deployment
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    assert "fail" in helpers.split('define "hub.terminationGracePeriodSeconds"')[1]
    env = deployment + helpers
    for secret in ("HUB_ADMIN_TOKEN", "HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_AMQP_URL"):
        assert re.search(rf"name: {secret}\n\s+valueFrom:\n\s+secretKeyRef:", env), secret
    job = (TEMPLATES / "migration-job.yaml").read_text()
    assert 'command: ["hub", "migrate"]' in job
    assert "pre-install,pre-upgrade" in job
    assert 'command: ["hub", "serve"]' in deployment


# --- HUB_* variables and the container image -----------------------------------------------------


def test_every_hub_variable_named_in_deploy_is_a_setting() -> None:
    known = set(re.findall(r"HUB_[A-Z0-9_]+", inspect.getsource(Settings.from_env)))
    assert {"HUB_HOST", "HUB_DATABASE_URL", "HUB_ADMIN_TOKEN"} <= known
    # Adapter secrets are a family: HUB_ADAPTER_SECRET_<NAME>, read by prefix.
    (prefix,) = re.findall(r'"(HUB_[A-Z_]+_)"', inspect.getsource(Settings._adapter_secrets))
    files = [*TEMPLATES.iterdir(), CHART / "values.yaml", DOCKERFILE, DEPLOY / "README.md"]
    for path in files:
        named = {
            name
            for name in re.findall(r"HUB_[A-Z0-9_]*[A-Z0-9]", path.read_text())
            if not (name + "_").startswith(prefix)
        }
        assert named <= known, f"{path.relative_to(ROOT)}: unknown {sorted(named - known)}"


def test_the_chart_carries_the_webhook_key_and_every_adapter_secret() -> None:
    deployment = (TEMPLATES / "deployment.yaml").read_text()
    secret = (TEMPLATES / "secret.yaml").read_text()
    assert re.search(r"name: HUB_WEBHOOK_KEY\n\s+valueFrom:\n\s+secretKeyRef:", deployment)
    assert "HUB_WEBHOOK_KEY: {{ . | quote }}" in secret
    assert 'include "hub.adapterSecretVariable"' in deployment
    assert 'include "hub.adapterSecretVariable" $name' in secret
    helpers = (TEMPLATES / "_helpers.tpl").read_text()
    assert 'printf "HUB_ADAPTER_SECRET_%s" (. | upper' in helpers
    values = (CHART / "values.yaml").read_text()
    secrets = yaml.safe_load(values)["secrets"]
    assert (secrets["adapterSecrets"], secrets["adapterSecretNames"]) == ({}, [])
    assert secrets["webhookKey"] == ""
    # Every secret the shipped adapters name is listed where an operator looks for them.
    adapters = yaml.safe_load((ROOT / "policies" / "adapters.yaml").read_text())
    named = set()
    for adapter in adapters["adapters"]:
        if secret_name := (adapter.get("credentials") or {}).get("secret"):
            named.add(secret_name)
        options = adapter.get("options") or {}
        named |= {options[key] for key in ("webhook_secret", "callback_secret") if key in options}
    assert named, "the demo adapters name their secrets"
    listed = values.split("adapterSecrets:")[0].rsplit("# The adapters' secrets", 1)[1]
    for secret_name in sorted(named):
        assert secret_name in listed, secret_name


def _dockerfile_instructions() -> list[tuple[str, str]]:
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in logical.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _cli_commands() -> set[str]:
    """Names of the ``hub`` CLI's top-level commands, read from its source (importing is slow)."""
    module, _, _ = PYPROJECT["project"]["scripts"]["hub"].partition(":")
    tree = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
    commands = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == "command"
                    and isinstance(decorator.func.value, ast.Name)
                    and decorator.func.value.id == "app"
                ):
                    explicit = decorator.args[0] if decorator.args else None
                    name = explicit.value if isinstance(explicit, ast.Constant) else node.name
                    commands.add(str(name).replace("_", "-"))
    return commands


def test_dockerfile_runs_the_hub_console_script() -> None:
    instructions = _dockerfile_instructions()
    cmd = json.loads(next(rest for kw, rest in reversed(instructions) if kw == "CMD"))
    assert cmd == ["hub", "serve"]
    assert cmd[0] in PYPROJECT["project"]["scripts"]
    assert {"serve", "migrate"} <= _cli_commands()
    stages = [rest for kw, rest in instructions if kw == "FROM"]
    assert len(stages) >= 2, "multi-stage build"
    assert any(kw == "ARG" and rest == "PYTHON_IMAGE=python:3.11-slim" for kw, rest in instructions)
    user = next(rest for kw, rest in reversed(instructions) if kw == "USER")
    assert user.split(":")[0] not in {"0", "root"}
    env = " ".join(rest for kw, rest in instructions if kw == "ENV")
    assert "HUB_HOST=0.0.0.0" in env
    assert f"EXPOSE {Settings().port}" in {f"{kw} {rest}" for kw, rest in instructions}
    healthcheck = next(rest for kw, rest in instructions if kw == "HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_docker_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = DOCKERIGNORE.read_text().splitlines()
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the ignore file is an allow-list"
    copied: set[str] = set()
    for keyword, rest in _dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in rest:
            sources = [s for s in rest.split() if not s.startswith("--")][:-1]
            copied.update(s.rstrip("*") for s in sources)
    for source in copied:
        assert source in allowed, f"{source} is copied but not in the build context"
        assert (ROOT / source).exists() or source == "README.md", source
    # Every package that `pip install .` picks up is in the build stage.
    packages = {
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied
    assert {"policies", "contracts", "pyproject.toml"} <= copied

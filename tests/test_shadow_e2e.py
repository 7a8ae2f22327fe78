"""Shadow mode through running hubs: both ways decided everywhere, the active one enforced.

Two back-end sets. Embedded: one hub (SQLite, in-process notifier). Real: two replicas sharing a
PostgreSQL database and Redis, polling the database only every 30 s, so a start or stop that
reaches the other replica within a second came through the notifier's signal. Each replica
gets the same traffic; the decision log in the database must hold every difference of every
replica, with the rule ids of both sides, and nothing after the run stops or expires.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.hubproc import ADMIN_TOKEN, HubProcess, hub_command, run_hub, write_policies
from tests.test_dryrun_e2e import PERMISSION, draft_of, problem, routes
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONFIG = "/admin/api/config"
PROPAGATION_LIMIT = 1.0  # seconds: a start or stop reaches every replica within this


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: UpstreamServer,
    backends: dict[str, str],
) -> Iterator[list[HubProcess]]:
    tmp = tmp_path_factory.mktemp("shadow-e2e")
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=routes(),
    )
    (policies / "permissions.yaml").write_text(yaml.safe_dump({"permissions": [PERMISSION]}))
    env = {
        **backends,
        "HUB_ACCESS_LOG": "false",
        "HUB_SAMPLE_MAX_AGE_SECONDS": "60",
        "HUB_SAMPLE_RATE": "1",
        "HUB_SAMPLE_KEY": "the-same-key-on-every-replica",
        # This module's replicas hear each other's signals, and no other test's.
        "HUB_CONFIG_CHANNEL": f"hub:config:shadow-test:{uuid.uuid4().hex[:12]}",
    }
    real = "HUB_REDIS_URL" in backends
    if real:
        # One issuer for the replicas behind one name, so a token from one works on the other.
        env.update(HUB_CONFIG_POLL_SECONDS="30", HUB_ISSUER="http://127.0.0.1:1")
    with run_hub(tmp / "a", policies, env=env) as first:
        if not real:
            yield [first]
            return
        with run_hub(tmp / "b", policies, env=env) as second:
            yield [first, second]


@pytest.fixture(scope="module")
def token(cluster: list[HubProcess], backends: dict[str, str]) -> str:
    tmp = cluster[0].log_path.parent
    env = {**backends, "HUB_DATA_DIR": str(tmp / "data")}
    vendor = hub_command(
        tmp,
        cluster[0],
        env,
        "clients",
        "create",
        "--name",
        "HR",
        "--owner",
        "acme",
        "--scopes",
        "svc.read",
    )
    answer = httpx.post(
        f"{cluster[0].url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(vendor["client_id"], vendor["client_secret"]),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    access: str = answer.json()["access_token"]
    return access


def admin(hub: HubProcess, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    kw.setdefault("headers", AUTH)
    return httpx.request(method, f"{hub.url}{CONFIG}{path}", json=body, timeout=TIMEOUT, **kw)


def new_draft(hub: HubProcess) -> int:
    active = admin(hub, "GET", "/active").json()["document"]
    created = admin(hub, "POST", "/drafts", {"document": draft_of(active)})
    assert created.status_code == 201, created.text
    draft_id: int = created.json()["id"]
    return draft_id


def shadow_active(hub: HubProcess) -> float:
    for line in httpx.get(f"{hub.url}/metrics", timeout=TIMEOUT).text.splitlines():
        if line.startswith("hub_shadow_active "):
            return float(line.split()[1])
    raise AssertionError("no hub_shadow_active metric")


def wait_until(check: Callable[[], bool], limit: float) -> float:
    """Seconds until ``check`` holds; fails after ``limit``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not within {limit} s")
        time.sleep(0.02)
    return time.monotonic() - started


def status(hub: HubProcess) -> dict[str, Any]:
    response = admin(hub, "GET", "/shadow")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def traffic(hub: HubProcess, token: str) -> None:
    """8 requests: 3 the draft would refuse, 2 it would allow, 2 it would route elsewhere."""
    bearer = {"Authorization": f"Bearer {token}"}
    plan = [
        *[("/api/est/e-1/records", bearer, 200)] * 3,
        *[("/api/est/e-2/records", bearer, 403)] * 2,
        *[("/api/open/special/x", {}, 200)] * 2,
        ("/api/open/other", {}, 200),
    ]
    with httpx.Client(base_url=hub.url, timeout=TIMEOUT) as client:
        for path, headers, expected in plan:
            # Enforced: the active version's answer, whatever the shadow draft decides.
            assert client.get(path, headers=headers).status_code == expected, path


def test_a_dry_run_on_one_replica_replays_the_whole_fleets_sample(
    cluster: list[HubProcess], token: str
) -> None:
    for hub in cluster:
        traffic(hub, token)
    n = len(cluster)
    draft = new_draft(cluster[0])

    def replayed() -> dict[str, Any]:
        response = admin(cluster[0], "POST", f"/drafts/{draft}/dry-run")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    # The other replica pushes its batch within a second.
    wait_until(lambda: replayed()["replayed"] == 8 * n, 5.0)
    report = replayed()
    assert (report["unchanged"], report["skipped"]) == (n, 0)
    assert report["changed"] == {"route": 2 * n, "auth": 0, "decision": 5 * n, "limit": 2 * n}
    assert report["decisions"]["allow_to_deny"] == 3 * n
    assert report["decisions"]["deny_to_allow"] == 2 * n
    assert admin(cluster[0], "DELETE", f"/drafts/{draft}").status_code == 204


def test_a_shadow_run_decides_everywhere_enforces_nothing_and_logs_both_rules(
    cluster: list[HubProcess], token: str
) -> None:
    draft = new_draft(cluster[0])
    started = admin(
        cluster[0],
        "POST",
        f"/drafts/{draft}/shadow",
        {"duration_seconds": 300, "comment": "try the move"},
    )
    assert started.status_code == 201, started.text
    run = started.json()
    assert (run["state"], run["draft_id"], run["draft_revision"], run["base_version"]) == (
        "running",
        draft,
        1,
        1,
    )
    assert (run["started_by"], run["comment"], run["stopped_at"]) == (
        "admin-token",
        "try the move",
        None,
    )
    for hub in cluster:
        wait_until(lambda hub=hub: shadow_active(hub) == 1.0, PROPAGATION_LIMIT)

    for hub in cluster:
        traffic(hub, token)

    n = len(cluster)
    wait_until(lambda: status(cluster[-1])["run"]["compared"] == 8 * n, 5.0)
    current = status(cluster[-1])
    assert current["on"] is True
    assert (
        current["run"]["compared"],
        current["run"]["differences"],
        current["run"]["dropped"],
    ) == (8 * n, 7 * n, 0)
    assert current["run"]["counts"] == {
        "total": 7 * n,
        "route": 2 * n,
        "auth": 0,
        "decision": 5 * n,
        "limit": 2 * n,
        "allow_to_deny": 3 * n,
        "deny_to_allow": 2 * n,
    }

    page = admin(cluster[0], "GET", f"/shadow/{run['id']}/decisions?kind=decision&limit=3")
    assert page.status_code == 200, page.text
    body = page.json()
    assert len(body["decisions"]) == 3
    assert body["next_after"] == body["decisions"][-1]["id"]
    rest = admin(
        cluster[0], "GET", f"/shadow/{run['id']}/decisions?kind=decision&after={body['next_after']}"
    ).json()
    rows = body["decisions"] + rest["decisions"]
    assert len(rows) == 5 * n
    assert rest["next_after"] is None
    refused = [r for r in rows if r["flip"] == "allow_to_deny"]
    allowed = [r for r in rows if r["flip"] == "deny_to_allow"]
    assert len(refused) == 3 * n
    assert len(allowed) == 2 * n
    for row in refused:
        assert (row["active"]["rule"], row["shadow"]["rule"]) == ("vendor-e1", None)
        assert (row["active"]["decision"], row["shadow"]["decision"]) == ("allow", "deny")
        assert row["status"] == 200  # what the active version answered
    for row in allowed:
        assert (row["active"]["rule"], row["shadow"]["rule"]) == (None, "vendor-e1")
        assert row["status"] == 403
    row = rows[0]
    assert (row["shadow"]["permission"], row["config_version"], row["draft_id"]) == (
        "est.records.read",
        1,
        draft,
    )
    assert row["principal"]["kind"] == "client"
    assert row["principal"]["subject"].startswith("~")
    assert row["path"].startswith("/api/est/~")
    assert row["path"].endswith("/records")
    everything = admin(cluster[0], "GET", f"/shadow/{run['id']}/decisions?limit=500").text
    for secret in (token, "e-1", "e-2", "/special/x", "127.0.0.1"):
        assert secret not in everything
    routed = admin(cluster[0], "GET", f"/shadow/{run['id']}/decisions?kind=route").json()[
        "decisions"
    ]
    assert {(r["active"]["route"], r["shadow"]["route"]) for r in routed} == {("open", "special")}
    assert {r["shadow"]["limit"] for r in routed} == {"5/1s burst 0 per ip"}


def test_starting_a_second_run_or_a_bad_one_is_refused(cluster: list[HubProcess]) -> None:
    hub = cluster[-1]
    draft = new_draft(hub)
    body = {"duration_seconds": 60, "comment": "again"}
    conflict = problem(admin(hub, "POST", f"/drafts/{draft}/shadow", body), 409, "shadow_running")
    assert conflict["run"] == status(hub)["run"]["id"]
    for duration in (0, -5, 10**9):
        problem(
            admin(hub, "POST", f"/drafts/{draft}/shadow", {**body, "duration_seconds": duration}),
            400,
            "invalid_request",
        )
    problem(
        admin(hub, "POST", f"/drafts/{draft}/shadow", {**body, "comment": "  "}),
        400,
        "invalid_request",
    )
    problem(admin(hub, "POST", f"/drafts/{draft}/shadow", {"comment": "x"}), 400, "invalid_request")
    problem(admin(hub, "POST", "/drafts/9999/shadow", body), 404, "not_found")
    problem(admin(hub, "POST", f"/drafts/{draft}/shadow", body, headers={}), 401, "unauthorized")
    problem(admin(hub, "GET", "/shadow/9999"), 404, "not_found")
    problem(admin(hub, "GET", "/shadow/9999/decisions"), 404, "not_found")
    run = status(hub)["run"]["id"]
    problem(admin(hub, "GET", f"/shadow/{run}/decisions?kind=everything"), 400, "invalid_request")
    problem(admin(hub, "GET", f"/shadow/{run}/decisions?limit=0"), 400, "invalid_request")
    problem(admin(hub, "GET", f"/shadow/{run}/decisions?after=-1"), 400, "invalid_request")
    problem(admin(hub, "GET", "/shadow", headers={}), 401, "unauthorized")
    problem(
        admin(hub, "DELETE", "/shadow", headers={"Authorization": "Bearer wrong"}),
        401,
        "unauthorized",
    )


def test_stopping_on_any_replica_stops_every_replica(cluster: list[HubProcess], token: str) -> None:
    run = status(cluster[0])["run"]
    stopped = admin(cluster[-1], "DELETE", "/shadow")
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["state"], stopped.json()["stopped_by"]) == ("stopped", "admin-token")
    for hub in cluster:
        wait_until(lambda hub=hub: shadow_active(hub) == 0.0, PROPAGATION_LIMIT)
    for hub in cluster:
        traffic(hub, token)
    time.sleep(1.0)  # every replica's writer has had its turn
    after = admin(cluster[0], "GET", f"/shadow/{run['id']}").json()
    assert (after["compared"], after["differences"]) == (run["compared"], run["differences"])
    assert status(cluster[0])["on"] is False
    problem(admin(cluster[0], "DELETE", "/shadow"), 404, "not_found")


def test_an_invalid_draft_cannot_run_in_shadow(cluster: list[HubProcess]) -> None:
    hub = cluster[0]
    active = admin(hub, "GET", "/active").json()["document"]
    bad = copy.deepcopy(active)
    bad["routes"][0]["upstream"] = "nope"
    draft = admin(hub, "POST", "/drafts", {"document": bad}).json()["id"]
    refused = problem(
        admin(hub, "POST", f"/drafts/{draft}/shadow", {"duration_seconds": 60, "comment": "x"}),
        422,
        "invalid_configuration",
    )
    assert refused["errors"] == ["$.routes[0].upstream: 'nope' is not a defined upstream"]
    assert status(hub)["on"] is False


def test_a_run_ends_by_itself_on_every_replica(cluster: list[HubProcess], token: str) -> None:
    draft = new_draft(cluster[0])
    started = admin(
        cluster[0], "POST", f"/drafts/{draft}/shadow", {"duration_seconds": 2, "comment": "short"}
    )
    assert started.status_code == 201, started.text
    run = started.json()
    for hub in cluster:
        wait_until(lambda hub=hub: shadow_active(hub) == 1.0, PROPAGATION_LIMIT)
    ends = time.time() + 2.0
    time.sleep(max(0.0, ends - time.time()) + 0.3)
    for hub in cluster:
        traffic(hub, token)
        assert shadow_active(hub) == 0.0  # the first request after the end turned it off
    time.sleep(1.0)
    after = admin(cluster[-1], "GET", f"/shadow/{run['id']}").json()
    assert (after["state"], after["compared"], after["stopped_at"]) == ("expired", 0, None)
    assert status(cluster[-1])["on"] is False
    # The next run may start at once.
    again = admin(
        cluster[-1], "POST", f"/drafts/{draft}/shadow", {"duration_seconds": 60, "comment": "again"}
    )
    assert again.status_code == 201, again.text
    assert admin(cluster[-1], "DELETE", "/shadow").status_code == 200

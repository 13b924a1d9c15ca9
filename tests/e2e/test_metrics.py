"""Prometheus metrics and the farm status: farm-wide gauges on the API's /metrics (queue depth
and oldest-message age — the autoscaling signal —, chats by status, live workers), the
worker host's own exposition port, and the owner's /api/experimental/farm/status."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.farm import OWNER_ROLES, Caller, Farm, make_caller

GHOST = "ghost-host"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in exposition text, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{{{re.escape(want)}}} (\S+)$" if want else rf"^{name} (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None


@pytest.fixture
def ghost_queue(farm: Farm) -> Iterator[str]:
    """A workspace host that registered once but has no worker now: its queue only grows."""
    from agentfarm.tasks import catalog, hosts
    from agentfarm.tasks.broker import get_broker

    broker = get_broker()
    queue = hosts.host_queue(GHOST)
    farm.redis.zadd(hosts.HOSTS_KEY, {GHOST: 1.0})  # long dead: not counted as live
    broker.declare_queue(queue)
    for n in range(3):
        broker.enqueue(catalog.TOOL_RUN.message(f"never-run-{n}", queue=queue))
    yield queue
    farm.redis.zrem(hosts.HOSTS_KEY, GHOST)
    namespace = broker.namespace
    farm.redis.delete(f"{namespace}:{queue}", f"{namespace}:{queue}.msgs")


def test_api_metrics_carry_queue_depth_age_and_chats(
    farm: Farm, caller: Caller, ghost_queue: str
) -> None:
    chat = caller.create_chat("[[reply: measured]]")
    caller.wait_status(chat["id"], "waiting", timeout=60)
    text = caller.http.get("/metrics").text
    assert sample(text, "agentfarm_queue_depth", queue=ghost_queue) == 3
    age = sample(text, "agentfarm_queue_oldest_message_age_seconds", queue=ghost_queue)
    assert age is not None and age >= 0
    assert sample(text, "agentfarm_queue_depth", queue="chat") is not None
    assert sample(text, "agentfarm_queue_dead_letters", queue="default") is not None
    assert (sample(text, "agentfarm_chats", status="waiting") or 0) >= 1
    assert (sample(text, "agentfarm_workers_live") or 0) >= 1
    assert (sample(text, "agentfarm_workspace_hosts_live") or 0) >= 1
    assert sample(
        text,
        "agentfarm_http_requests_total",
        method="POST",
        route="/api/experimental/chats",
        status="201",
    )


def test_worker_host_serves_its_own_metrics(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: counted]]")
    caller.wait_status(chat["id"], "waiting", timeout=60)
    port = farm.env["AGENTFARM_WORKER_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "agentfarm_chat_step_duration_seconds_bucket" in text
    assert re.search(
        r'^agentfarm_chat_steps_total\{model="scripted",outcome="persisted"\} ', text, re.M
    )
    assert re.search(r'^agentfarm_messages_processed_total\{.*actor="chat.step".*\} ', text, re.M)
    beat = sample(text, "agentfarm_worker_heartbeat_timestamp_seconds")
    assert beat is not None and beat > 0


def test_farm_status_for_owners(farm: Farm, caller: Caller, ghost_queue: str) -> None:
    assert caller.http.get("/api/experimental/farm/status").status_code == 403
    owner = make_caller(farm.base_url, roles=OWNER_ROLES)
    try:
        report = owner.http.get("/api/experimental/farm/status").json()
    finally:
        owner.http.close()
    assert report["workers"] and all(w["last_heartbeat"] > 0 for w in report["workers"])
    assert "local" in [h["name"] for h in report["workspace_hosts"]]
    queues = {q["queue"]: q for q in report["queues"]}
    assert {"chat", "default", "scheduled", ghost_queue} <= set(queues)
    assert queues[ghost_queue]["depth"] == 3 and queues[ghost_queue]["oldest_age_s"] >= 0
    assert isinstance(report["chats_by_status"], dict)
    assert isinstance(report["in_flight"], list)

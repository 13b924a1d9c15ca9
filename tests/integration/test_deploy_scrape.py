"""Every metric the alerts, the dashboard and the HPA adapter name, with the labels they match
and group by, is in a scrape of a running farm (API and worker) and of a running scheduler.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.fixtures.deploy import adapter_exprs, alert_exprs, dashboard_exprs, promql_refs
from tests.fixtures.farm import Caller, Farm, free_port, sse_events

# Labels Prometheus adds or renames at scrape time: the target's labels, and the scheduler's
# own `job` label, which clashes with the target label and is stored as `exported_job`.
_TARGET_LABELS = {"instance", "job", "namespace", "pod", "component"}
_RENAMED = {"exported_job": "job"}


def scrape(url: str) -> dict[str, set[str]]:
    """Sample name → label names, from one exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = httpx.get(url, timeout=10)  # no token: Prometheus scrapes anonymously
    assert resp.status_code == 200, (url, resp.status_code)
    out: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[sample.name] |= set(sample.labels)
    return out


@pytest.fixture
def scheduler_metrics_url(
    database_url: str, scratch_redis: redis_lib.Redis, tmp_path: Path
) -> Iterator[str]:
    """A real ``agentfarm scheduler`` (its own lock key and broker namespace, on the scratch
    Redis db) that has led and sent every job once."""
    kw = scratch_redis.connection_pool.connection_kwargs
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith("AGENTFARM_") and k != "PROMETHEUS_MULTIPROC_DIR"},
        "AGENTFARM_DATABASE_URL": database_url,
        "AGENTFARM_REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}",
        "AGENTFARM_BROKER_NAMESPACE": f"deploy-{uuid.uuid4().hex[:8]}",
        "AGENTFARM_SCHEDULER_LOCK_KEY": str(random.randrange(1, 2**40)),
        "AGENTFARM_SCHEDULER_POLL_S": "0.5",
        "AGENTFARM_RECOVER_STALE_EVERY_S": "1",
        "AGENTFARM_WORKSPACE_AUTOSTOP_EVERY_S": "1",
        "AGENTFARM_RETENTION_PURGE_EVERY_S": "1",
        "AGENTFARM_SCHEDULER_PORT": str(port),
    }  # fmt: skip
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentfarm.cli", "scheduler"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                text = httpx.get(url, timeout=2).text
            except httpx.TransportError:
                text = ""
            if "agentfarm_scheduler_leader 1.0" in text and (
                "agentfarm_scheduler_last_success_timestamp_seconds{" in text
            ):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"scheduler did not lead:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def promql_sources() -> dict[str, str]:
    """Every PromQL expression deploy/ ships, by where it is."""
    return {
        **{f"alerts.yml {k}": v for k, v in alert_exprs().items()},
        **{f"agentfarm.json {k}": v for k, v in dashboard_exprs().items()},
        **{f"adapter {k}": v for k, v in adapter_exprs().items()},
    }


def scrape_until(urls: list[str], samples: dict[str, set[str]], names: set[str]) -> None:
    """Add the scrapes of ``urls`` to ``samples`` until they hold ``names`` or 30 s passed
    (the API caches its farm-wide gauges for 5 s; a purge's counter lands after its rows are
    gone)."""
    deadline = time.monotonic() + 30
    while True:
        for url in urls:
            for name, labels in scrape(url).items():
                samples[name] |= labels
        if names <= set(samples) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


@pytest.mark.e2e
def test_every_metric_named_in_alerts_dashboard_and_adapter_is_scraped(
    farm: Farm, caller: Caller, scheduler_metrics_url: str
) -> None:
    sources = promql_sources()
    wanted = set().union(*(promql_refs(expr)[0] for expr in sources.values()))
    urls = [
        f"{farm.base_url}/metrics",
        f"http://127.0.0.1:{farm.env['AGENTFARM_WORKER_METRICS_PORT']}/metrics",
        scheduler_metrics_url,
    ]
    samples: dict[str, set[str]] = defaultdict(set)

    # A turn with a model call that is retried (429), a tool call and token usage, and a
    # stream opened on it: scraped while the chat exists.
    tag = uuid.uuid4().hex
    chat = caller.create_chat(
        f"deploy {tag} [[fail: 429 times=1]] [[tool: list_templates {{}}]] [[after_tools: done]]"
    )
    caller.wait_status(chat["id"], "waiting", timeout=90)
    assert sse_events(farm.base_url, caller.token, chat["id"], limit=1, timeout=30)
    scrape_until(urls, samples, wanted - {"agentfarm_purged_rows_total"})

    # Then archived, aged past any retention window (at most 3650 days) and purged.
    resp = caller.http.patch(f"/api/experimental/chats/{chat['id']}", json={"archived": True})
    assert resp.status_code < 300, resp.text
    from agentfarm.tasks import catalog
    from models import db

    with db.get_engine().begin() as conn:
        conn.execute(
            sa.text("UPDATE chats SET updated_at = now() - interval '3660 days' WHERE id = :id"),
            {"id": chat["id"]},
        )
    catalog.RETENTION_PURGE.send()
    scrape_until(urls, samples, wanted)

    missing, bad_labels = [], []
    for where, expr in sources.items():
        names, selectors, grouping = promql_refs(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        missing += [f"{where}: {name}" for name in names if name not in samples]
        for name, labels in selectors:
            have = samples.get(name, set()) | _TARGET_LABELS
            unknown = {_RENAMED.get(label, label) for label in labels} - have
            if unknown:
                bad_labels.append(f"{where}: {name} has no label {sorted(unknown)}")
        have = set().union(*(samples.get(n, set()) for n in names)) | _TARGET_LABELS
        unknown = {_RENAMED.get(label, label) for label in grouping} - have
        if unknown:
            bad_labels.append(f"{where}: grouping by {sorted(unknown)} matches no label")
    assert not missing, "metrics not in any scrape:\n" + "\n".join(sorted(missing))
    assert not bad_labels, "\n".join(bad_labels)

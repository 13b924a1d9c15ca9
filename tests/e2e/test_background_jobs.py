"""Background work on the real farm: the workspace host reports a chat's git branch and origin
after tool calls that touch git; a root chat that goes ``waiting`` or ``error`` sends its
owner's browsers a web push notification (decrypted by a local push service), dropping
subscriptions the push service says are gone; ``usage.rollup`` and the insights actors run on
the farm's worker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from agentfarm.integrations import webpush as push
from agentfarm.settings import get_settings
from agentfarm.tasks.outbox import deferred_messages
from models import db, webpush
from models.crypto import SecretBox
from models.insights import diff_statuses
from tests.e2e.test_metrics import sample
from tests.e2e.test_tools import create_workspace, make_template, tool, turn
from tests.fixtures.farm import Caller, Farm
from tests.fixtures.push_service import PushService

PUSH = "/api/v2/users/me/notifications/push"


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService() as s:
        yield s


def diff_row(chat_id: str) -> Any:
    with db.session_scope() as session:
        return session.execute(
            sa.text("SELECT * FROM chat_diff_statuses WHERE chat_id = :c"), {"c": chat_id}
        ).first()


def endpoints(user_id: uuid.UUID) -> list[str]:
    with db.session_scope() as session:
        return [s.endpoint for s in webpush.subscriptions_of(session, user_id)]


def wait_for(what: str, check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_workspace_reports_branch_and_origin(farm: Farm, owner: Caller, caller: Caller) -> None:
    chat_id, workspace = create_workspace(caller, make_template(owner))
    turn(caller, chat_id, tool("execute", command="echo not a repository yet"))
    assert diff_row(chat_id) is None
    origin = "https://x-access-token:s3cret@github.com/acme/widgets.git"
    setup = (f"git init -q -b feature/pr-42 widgets && cd widgets && git remote add origin "
             f"{origin} && git -c user.email=a@example.com -c user.name=A commit -q "
             "--allow-empty -m init")  # fmt: skip
    turn(caller, chat_id, tool("execute", command=setup))
    row = diff_row(chat_id)
    assert row is not None, "the host did not report the repository"
    # The clone in a subdirectory is found; the token in the remote is never stored.
    assert (row.git_branch, row.git_remote_origin) == (
        "feature/pr-42", "https://github.com/acme/widgets.git")  # fmt: skip
    assert row.pr_number is None
    turn(caller, chat_id, tool("execute", command="git checkout -q -b fix/typo", workdir="widgets"))
    assert diff_row(chat_id).git_branch == "fix/typo"
    chat = caller.chat(chat_id)
    assert chat["diff_status"]["chat_id"] == chat_id and "pr_number" not in chat["diff_status"]


def test_push_when_a_root_chat_finishes_or_fails(
    farm: Farm, caller: Caller, other_caller: Caller, service: PushService
) -> None:
    key = caller.http.get("/api/v2/notifications/push/public-key")
    assert key.status_code == 200, key.text
    public_key = key.json()["public_key"]
    service.browser("laptop")
    service.browser("old-phone", status=410)  # unsubscribed in the browser meanwhile
    for name in ("laptop", "old-phone"):
        resp = caller.http.post(f"{PUSH}/subscription", json=service.subscription(name))
        assert resp.status_code == 204, resp.text
    bad = {**service.subscription("laptop"), "p256dh_key": "not-a-key"}
    assert caller.http.post(f"{PUSH}/subscription", json=bad).status_code == 400
    elsewhere = f"/api/v2/users/{caller.username}/notifications/push/subscription"
    refused = other_caller.http.post(elsewhere, json=service.subscription("laptop"))
    assert refused.status_code == 404

    chat = caller.create_chat("Summarise the repository layout")
    caller.wait_status(chat["id"], "waiting")
    deliveries = service.wait(2)
    laptop = next(d for d in deliveries if d.browser == "laptop")
    titles = {chat["title"], caller.chat(chat["id"])["title"]}
    assert laptop.payload["title"] in titles
    assert {k: v for k, v in laptop.payload.items() if k != "title"} == {
        "icon": "/favicon.ico",
        "body": "Agent has finished running.",
        "actions": [{"label": "View chat", "url": f"{get_settings().access_url}/agents/"
                     f"{chat['id']}"}],
    }  # fmt: skip
    # Signed with the deployment's VAPID key, for this push service, encrypted for the browser.
    assert (laptop.vapid_key, laptop.vapid_valid) == (public_key, True)
    assert laptop.claims["aud"] == service.origin
    assert laptop.claims["sub"] == "mailto:agentfarm@localhost"
    assert laptop.headers["content-encoding"] == "aes128gcm"
    # The push service said 410 for the old phone: that subscription is gone.
    wait_for("the gone subscription to be removed",
             lambda: endpoints(caller.user_id) == [service.endpoint("laptop")])  # fmt: skip

    # A text of its own: the scripted model counts [[fail]] per message text.
    failing = caller.create_chat(f"[[fail: 400 times=1]] push {uuid.uuid4().hex}")
    failed = caller.wait_status(failing["id"], "error")
    error = service.wait(3)[2]
    assert (error.browser, error.payload["body"]) == ("laptop", failed["last_error"])

    assert caller.http.post(f"{PUSH}/test").status_code == 204
    assert service.wait(4)[3].payload["title"] == "It's working!"

    gone = caller.http.request("DELETE", f"{PUSH}/subscription",
                               json={"endpoint": service.endpoint("laptop")})  # fmt: skip
    assert gone.status_code == 204
    assert endpoints(caller.user_id) == []


def test_only_root_chats_notify_and_push_never_blocks(
    farm_env: dict[str, str], caller: Caller, service: PushService
) -> None:
    session = db.new_session()
    try:
        root = SimpleNamespace(id=uuid.uuid4(), parent_chat_id=None, owner_id=caller.user_id)
        child = SimpleNamespace(id=uuid.uuid4(), parent_chat_id=root.id, owner_id=root.owner_id)
        push.defer_notification(session, root, "error")  # no browser subscribed: nothing to send
        assert deferred_messages(session) == []
        service.browser("laptop")
        webpush.subscribe(session, caller.user_id, **service.subscription("laptop"))
        push.defer_notification(session, child, "waiting")
        push.defer_notification(session, root, "running")
        assert deferred_messages(session) == []
        push.defer_notification(session, root, "error")
        (message,) = deferred_messages(session)
        assert (message.actor_name, message.args) == ("push.send", (str(root.id), "error"))
    finally:
        session.rollback()  # dropped: nothing is sent
        session.close()
    # No encryption key in this process: push falls back to a no-op sender with a reason.
    sender = push.build_sender(SecretBox([]), get_settings())
    assert isinstance(sender, push.NoopSender) and "encryption key" in sender.reason


def test_usage_rollup_runs_on_the_farm(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: counted]] [[usage: prompt=1200 completion=300]]")
    caller.wait_status(chat["id"], "waiting")
    with db.session_scope() as session:
        ids = list(session.execute(sa.text(
            "SELECT id FROM chat_messages WHERE chat_id = :c AND role = 'assistant'"),
            {"c": chat["id"]}).scalars())  # fmt: skip
    assert ids
    from agentfarm.tasks import catalog

    catalog.USAGE_ROLLUP.send()  # a chain of batches until everything the suite wrote is rolled up

    def rolled() -> bool:
        with db.session_scope() as session:
            left = session.execute(sa.text(
                "SELECT count(*) FROM usage_rollup_pending WHERE message_id = ANY(:ids)"),
                {"ids": ids}).scalar_one()  # fmt: skip
        return left == 0

    wait_for("the chat's messages to be rolled up", rolled, timeout=60)
    with db.session_scope() as session:
        rows = session.execute(sa.text(
            "SELECT sum(output_tokens), sum(priced_count + unpriced_count) FROM usage_user_days "
            "WHERE user_id = :u"), {"u": caller.user_id}).one()  # fmt: skip
        assert (rows[0], rows[1]) == (300, len(ids))
    # The caller's figures read the rollups now, and say the same as the messages.
    summary = caller.http.get("/api/experimental/chats/cost/me/summary").json()
    assert summary["total_output_tokens"] == 300 and summary["total_input_tokens"] == 1200
    port = farm.env["AGENTFARM_WORKER_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert (sample(text, "agentfarm_rollup_rows_total") or 0) >= len(ids)


def test_insights_actors_run_on_the_farm(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: ok]]")
    caller.wait_status(chat["id"], "waiting")
    origin = "https://git.example.org/acme/widgets.git"  # no provider is configured for it
    with db.session_scope() as session:
        diff_statuses.report_git_ref(session, uuid.UUID(chat["id"]), "main", origin)
    from agentfarm.tasks import catalog

    catalog.INSIGHTS_REFRESH.send()

    def backed_off() -> bool:
        row = diff_row(chat["id"])
        return row.stale_at > row.updated_at + timedelta(minutes=9)

    # Claimed (5 minutes), then ingested on the worker: no provider, so 10 minutes.
    wait_for("the worker to ingest and back off", backed_off)

"""PR-insights ingestion against a local GitHub-REST-compatible server, once at the
api.github.com path layout and once under ``/api/v3`` as GitHub Enterprise: every field of
ChatDiffStatus is stored, a change is a ``diff_status_change`` watch event, rate limits and
token failures back off, and the API serves the status, the diff and the token links.

Ingestion runs in this process (the plain function the ``insights.ingest_pr`` actor calls),
with the providers given explicitly; the API (in-process too) reads them from the
environment, which the tests set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agentfarm import external_auth
from agentfarm.tasks.outbox import deferred_messages
from models import db
from models.insights import diff_statuses, git_links
from tests.fixtures.farm import make_caller
from tests.fixtures.pr_env import (
    BRANCH,
    CHATS,
    LAYOUTS,
    STALE,
    TOKEN,
    Env,
    drain,
    link,
    new_chat,
    open_env,
    report,
    watch_events,
)
from workers.integrations import insights


@pytest.fixture(params=sorted(LAYOUTS))
def env(
    request: pytest.FixtureRequest,
    api_server: str,
    farm_env: dict[str, str],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Env]:
    with open_env(request.param, api_server, farm_env, redis_url, monkeypatch) as e:
        yield e


def test_every_field_is_stored_and_served(env: Env) -> None:
    link(env)
    assert report(env) is True
    assert report(env) is False  # the same branch again changes nothing
    events = watch_events(env)
    before = datetime.now(UTC)
    assert env.ingest() == "stored"

    row = env.row()
    expected = {
        "url": "https://github.com/acme/widgets/pull/7",
        "pull_request_state": "open",
        "pull_request_title": "Add the widget frobnicator (#7)",
        "pull_request_draft": False,
        "changes_requested": False,  # carol approved after requesting changes
        "additions": 120,
        "deletions": 14,
        "changed_files": 5,
        "author_login": "octocat",
        "author_avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
        "base_branch": "main",
        "head_branch": BRANCH,
        "pr_number": 7,
        "commits": 3,
        "approved": True,
        "reviewer_count": 3,  # alice, bob, carol; not the author
    }
    assert {k: getattr(row, k) for k in expected} == expected
    assert row.pr_created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert row.refreshed_at is not None and row.refreshed_at >= before
    assert row.stale_at - row.refreshed_at == STALE

    # Every call went to this provider's layout, with the owner's token.
    paths = [p for p, _, _ in env.server.requests]
    prefix = env.server.prefix
    assert paths == [
        f"{prefix}/repos/acme/widgets/pulls",
        f"{prefix}/repos/acme/widgets/pulls/7",
        f"{prefix}/repos/acme/widgets/pulls/7/reviews",
    ]
    assert "head=acme%3Afeature%2Ffrobnicator" in env.server.requests[0][1]
    assert {a for _, _, a in env.server.requests} == {f"Bearer {TOKEN}"}

    (event,) = [e for e in drain(events) if e["kind"] == "diff_status_change"]
    assert event["chat"]["id"] == str(env.chat_id)

    # The API serves the cached status on the chat and the PR's diff.
    chat = env.caller.chat(str(env.chat_id))
    assert {k: chat["diff_status"][k] for k in expected} == expected
    assert chat["diff_status"]["chat_id"] == str(env.chat_id)
    diff = env.caller.http.get(f"{CHATS}/{env.chat_id}/diff")
    assert diff.status_code == 200, diff.text
    assert diff.json() == {
        "chat_id": str(env.chat_id),
        "provider": "github",
        "remote_origin": env.origin,
        "branch": BRANCH,
        "pull_request_url": expected["url"],
        "diff": "diff --git a/frob.py b/frob.py\n+print('frob')\n",
    }

    # Nothing changed at the provider: stored again, no event.
    assert env.ingest() == "stored"
    assert [e for e in drain(events) if e["kind"] == "diff_status_change"] == []
    # The PR is merged: the state changes (an event), and the next look is ten times later.
    env.server.repos["acme/widgets"].pulls[0].update(
        state="closed",
        merged=True,
        merged_at="2024-03-03T08:00:00Z",
        closed_at="2024-03-03T08:00:00Z",
    )
    assert env.ingest() == "stored"
    row = env.row()
    assert (row.pull_request_state, row.pr_merged_at) == (
        "merged",
        datetime(2024, 3, 3, 8, tzinfo=UTC),
    )
    assert row.stale_at - row.refreshed_at == STALE * 10
    assert len([e for e in drain(events) if e["kind"] == "diff_status_change"]) == 1
    events.close()


def test_a_branch_without_a_pull_request_clears_the_fields(env: Env) -> None:
    link(env)
    report(env)
    assert env.ingest() == "stored"
    assert report(env, "fix/typo") is True  # the workspace moved to another branch
    assert env.row().stale_at <= datetime.now(UTC)
    assert env.ingest() == "no_pull"
    row = env.row()
    assert (row.pr_number, row.url, row.pull_request_title, row.additions) == (None, None, "", 0)
    assert row.git_branch == "fix/typo"
    # Without a PR the diff is the branch's against the default branch.
    body = env.caller.http.get(f"{CHATS}/{env.chat_id}/diff").json()
    assert body["diff"] == "diff --git a/README b/README\n-teh\n+the\n"
    assert "pull_request_url" not in body


@pytest.mark.parametrize("kind", ["403", "429"])
def test_rate_limits_back_off_until_the_reset(env: Env, kind: str) -> None:
    link(env)
    report(env)
    reset = int(time.time()) + 900
    env.server.limit, env.server.limit_times = ((kind, reset) if kind == "403" else (kind, 120)), 1
    started = datetime.now(UTC)
    assert env.ingest() == "rate_limited"
    row = env.row()
    assert row.pr_number is None and row.refreshed_at is None  # nothing stored, nothing failed
    if kind == "403":
        assert row.stale_at == datetime.fromtimestamp(reset, UTC)
    else:
        assert started + timedelta(seconds=119) <= row.stale_at <= started + timedelta(seconds=125)
    assert env.ingest() == "stored"  # the limit has passed


def test_token_failures_back_off_ten_minutes(env: Env) -> None:
    report(env)
    started = datetime.now(UTC)
    assert env.ingest() == "token"  # no token linked
    assert env.server.requests == []
    ten = timedelta(minutes=10)
    assert started + ten <= env.row().stale_at <= datetime.now(UTC) + ten
    link(env, "ghp_revoked")
    assert env.ingest() == "token"  # 401 Bad credentials
    assert env.server.requests[-1][2] == "Bearer ghp_revoked"
    assert env.row().stale_at >= started + ten


def test_refresh_claims_stale_rows_and_sends_one_ingestion_each(env: Env) -> None:
    report(env)
    other = new_chat(env.caller.user_id)
    with db.session_scope() as session:
        diff_statuses.report_git_ref(session, other, "main", "")  # no origin: never claimed
    now = datetime.now(UTC)
    session = db.new_session()
    try:
        claimed = insights.refresh(session, now=now, limit=10_000)
        outbox = deferred_messages(session)
        session.flush()
        again = diff_statuses.claim_stale(
            session, now=now, limit=10_000, claim_for=timedelta(minutes=5)
        )
    finally:
        session.rollback()  # the messages are dropped: the farm's worker must not run them
        session.close()
    assert env.chat_id in claimed and other not in claimed
    mine = [m for m in outbox if m.args == (str(env.chat_id),)]
    assert [m.actor_name for m in mine] == ["insights.ingest_pr"]
    assert env.chat_id not in again  # claimed for five minutes


def test_origin_without_a_provider_is_skipped(env: Env) -> None:
    link(env)
    with db.session_scope() as session:
        diff_statuses.report_git_ref(session, env.chat_id, BRANCH, "https://gitlab.com/a/b.git")
    assert env.ingest() == "no_provider"
    assert env.server.requests == []


def test_external_auth_endpoints_never_return_the_token(env: Env) -> None:
    http = env.caller.http
    listed = http.get("/api/v2/external-auth").json()
    assert [p["id"] for p in listed["providers"]] == ["github", "ghe"]
    assert listed["providers"][1]["display_name"] == "Acme GHE" and listed["links"] == []
    assert http.get(f"/api/v2/external-auth/{env.provider_id}").json()["authenticated"] is False
    empty = http.put(f"/api/v2/external-auth/{env.provider_id}/token", json={"access_token": " "})
    assert empty.status_code == 400
    unknown = http.put("/api/v2/external-auth/gitlab/token", json={"access_token": TOKEN})
    assert unknown.status_code == 404
    link(env)
    bodies = [
        http.get("/api/v2/external-auth").text,
        http.get(f"/api/v2/external-auth/{env.provider_id}").text,
    ]
    assert all(TOKEN not in b for b in bodies)
    assert json.loads(bodies[1])["authenticated"] is True
    with db.session_scope() as session:
        stored = session.execute(
            sa.text("SELECT oauth_access_token FROM external_auth_links WHERE user_id = :u"),
            {"u": env.caller.user_id},
        ).scalar_one()
        assert TOKEN not in stored
        assert (
            git_links.user_token(
                session, env.box, provider_id=env.provider_id, user_id=env.caller.user_id
            )
            == TOKEN
        )
    assert http.delete(f"/api/v2/external-auth/{env.provider_id}").status_code == 200
    assert http.delete(f"/api/v2/external-auth/{env.provider_id}").status_code == 404
    # Someone else's chat: the diff is hidden like the chat.
    stranger = make_caller(env.caller.base_url)
    assert stranger.http.get(f"{CHATS}/{env.chat_id}/diff").status_code == 404
    stranger.http.close()


def test_provider_configuration_parsing() -> None:
    configs = external_auth.parse(
        {
            "AGENTFARM_EXTERNAL_AUTH_0_TYPE": "github",
            "AGENTFARM_EXTERNAL_AUTH_1_TYPE": "github",
            "AGENTFARM_EXTERNAL_AUTH_1_ID": "ghe",
            "AGENTFARM_EXTERNAL_AUTH_1_API_BASE_URL": "https://ghe.example.com/api/v3/",
            "AGENTFARM_EXTERNAL_AUTH_1_CLIENT_ID": "ignored",
            "AGENTFARM_EXTERNAL_AUTH_2_TYPE": "github",  # duplicate id "github": left out
            "AGENTFARM_EXTERNAL_AUTH_3_TYPE": "github",
            "AGENTFARM_EXTERNAL_AUTH_3_ID": "broken",
            "AGENTFARM_EXTERNAL_AUTH_3_REGEX": "(",
        }
    )
    assert [(c.id, c.api_base_url) for c in configs] == [
        ("github", "https://api.github.com"),
        ("ghe", "https://ghe.example.com/api/v3"),
    ]
    pick = external_auth.provider_for_origin
    assert pick(configs, "git@github.com:acme/w.git") is configs[0]
    assert pick(configs, "https://github.com/acme/w") is configs[0]
    assert pick(configs, "ssh://git@ghe.example.com/acme/w.git") is configs[1]
    assert pick(configs, "https://gitlab.com/acme/w.git") is None
    assert external_auth.repo_of("git@ghe.example.com:team/widgets.git") == ("team", "widgets")
    assert external_auth.repo_of("https://github.com/acme") is None
    assert (
        external_auth.strip_credentials("https://x-access-token:s3cret@github.com/a/b.git")
        == "https://github.com/a/b.git"
    )

"""``GET /chats/insights/pull-requests`` on a known data set written straight into the database
(PRs opened in 2002, a year no other test writes to), against figures worked out by hand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from models import db
from tests.fixtures.farm import OWNER_ROLES, Caller, make_caller, open_caller

CHATS = "/api/experimental/chats"
WINDOW = {"start_date": "2002-03-01T00:00:00Z", "end_date": "2002-03-31T00:00:00Z"}


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2002, month, day, hour, tzinfo=UTC)


# chat: (model, parent, cost of its messages, PR fields or None)
PRS: dict[str, tuple[str, str | None, int, dict[str, Any] | None]] = {
    "A": ("m1", None, 1000, {"pr_number": 1, "pr_created_at": at(3, 2, 10),
          "pr_merged_at": at(3, 5), "pr_closed_at": at(3, 5), "pull_request_state": "merged",
          "additions": 100, "deletions": 10, "approved": True, "reviewer_count": 2,
          "commits": 4, "author_login": "octocat"}),
    "A1": ("m1", "A", 500, None),  # A's subagent: its cost counts for A's PR
    "B": ("m1", None, 300, {"pr_number": 2, "pr_created_at": at(3, 5, 9),
          "pr_closed_at": at(3, 6, 0), "pull_request_state": "closed", "additions": 20,
          "deletions": 5, "approved": False, "changes_requested": True}),
    "C": ("m2", None, 0, {"pr_number": 3, "pr_created_at": at(3, 10), "pull_request_draft": True,
          "pull_request_state": "open", "additions": 7, "deletions": 1}),
    "D": ("m2", None, 900, {"pr_number": 4, "pr_created_at": at(2, 20), "pr_merged_at": at(3, 3),
          "pr_closed_at": at(3, 3), "pull_request_state": "merged", "additions": 50}),
    "E": ("m1", None, 100, {"pr_number": 5, "pr_created_at": at(2, 25),
          "pull_request_state": "open"}),
    "F": ("m1", None, 50, {}),  # a branch without a PR: not a PR
    "G": ("m1", None, 70, {"pr_number": 7, "pr_created_at": at(4, 2),
          "pull_request_state": "open"}),  # after the window
}  # fmt: skip


@pytest.fixture
def admin(api_server: str) -> Iterator[Caller]:
    with open_caller(api_server, roles=OWNER_ROLES) as c:
        yield c


@pytest.fixture
def chats(admin: Caller) -> Iterator[dict[str, Any]]:
    """The data set, committed (the API reads it), and removed afterwards: the model configs
    would otherwise show in every later test's model catalog."""
    tag = uuid.uuid4().hex[:6]
    ids: dict[str, Any] = {}
    with db.session_scope() as session:
        x = session.execute
        models = {
            key: x(
                sa.text(
                    "INSERT INTO chat_model_configs (provider, model, display_name, "
                    "context_limit, compression_threshold) "
                    "VALUES ('openai-compat', :m, :d, 1000, 70) RETURNING id"
                ),
                {"m": f"pr-{key}-{tag}", "d": display},
            ).scalar_one()
            for key, display in (("m1", f"Model One {tag}"), ("m2", ""))
        }
        ids["models"] = models
        for name, (model, parent, cost, pr) in PRS.items():
            chat = x(
                sa.text(
                    "INSERT INTO chats (organization_id, owner_id, last_model_config_id, title, "
                    "parent_chat_id, root_chat_id) SELECT id, :u, :m, :t, :p, :p "
                    "FROM organizations WHERE is_default RETURNING id"
                ),
                {"u": admin.user_id, "m": models[model], "t": name, "p": ids.get(parent)},
            ).scalar_one()
            ids[name] = chat
            if cost:
                x(
                    sa.text(
                        "INSERT INTO chat_messages (chat_id, model_config_id, role, content, "
                        "output_tokens, total_cost_micros, created_at) "
                        "VALUES (:c, :m, 'assistant', '[]', 10, :cost, :at)"
                    ),
                    {"c": chat, "m": models[model], "cost": cost, "at": at(3, 1)},
                )
            if pr is not None:
                fields = {"url": f"https://github.com/acme/w/pull/{pr.get('pr_number')}", **pr}
                if not pr:
                    fields = {}
                cols = ", ".join(["chat_id", "git_branch", "git_remote_origin", *fields])
                vals = ", ".join([":chat_id", "'b'", "'https://github.com/acme/w'",
                                  *(f":{k}" for k in fields)])  # fmt: skip
                x(
                    sa.text(f"INSERT INTO chat_diff_statuses ({cols}) VALUES ({vals})"),
                    {"chat_id": chat, **fields},
                )
    yield ids
    chat_ids = [v for k, v in ids.items() if k != "models"]
    with db.session_scope() as session:
        # Children first (parent_chat_id); messages and diff statuses go with their chats.
        for where in ("parent_chat_id IS NOT NULL", "true"):
            session.execute(
                sa.text(f"DELETE FROM chats WHERE id = ANY(:ids) AND {where}"), {"ids": chat_ids}
            )
        session.execute(
            sa.text("DELETE FROM chat_model_configs WHERE id = ANY(:ids)"),
            {"ids": list(ids["models"].values())},
        )


def test_figures_on_a_known_data_set(admin: Caller, chats: dict[str, Any]) -> None:
    resp = admin.http.get(f"{CHATS}/insights/pull-requests", params=WINDOW)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["summary"] == {
        "total_prs_created": 3,  # A, B, C
        "total_prs_merged": 1,  # A
        "merge_rate": 1 / 3,
        "total_additions": 127,
        "total_deletions": 16,
        "total_cost_micros": 1800,  # A's tree (1000 + its subagent's 500) + B's 300 + C's 0
        "cost_per_merged_pr_micros": 1800,
        "approval_rate": 1 / 3,
        "prev_total_prs_created": 2,  # D, E
        "prev_total_prs_merged": 1,  # D
        "prev_merge_rate": 0.5,
        "prev_cost_per_merged_pr_micros": 1000,
    }
    series = body["time_series"]
    assert len(series) == 30 and series[0]["date"] == "2002-03-01T00:00:00Z"
    counts = {s["date"][:10]: (s["prs_created"], s["prs_merged"], s["prs_closed"]) for s in series}
    busy = {day: c for day, c in counts.items() if any(c)}
    assert busy == {
        "2002-03-02": (1, 0, 0),
        "2002-03-03": (0, 1, 0),  # D, opened in the previous window, merged in this one
        "2002-03-05": (1, 1, 0),
        "2002-03-06": (0, 0, 1),
        "2002-03-10": (1, 0, 0),
    }
    m1, m2 = (str(chats["models"][k]) for k in ("m1", "m2"))
    model2 = body["by_model"][1]["display_name"]
    assert model2.startswith("pr-m2-")  # no display name: the model's name
    assert body["by_model"] == [
        {"model_config_id": m1, "display_name": body["by_model"][0]["display_name"],
         "provider": "openai-compat", "total_prs": 2, "merged_prs": 1, "merge_rate": 0.5,
         "total_additions": 120, "total_deletions": 15, "total_cost_micros": 1800,
         "cost_per_merged_pr_micros": 1800},
        {"model_config_id": m2, "display_name": model2, "provider": "openai-compat",
         "total_prs": 1, "merged_prs": 0, "merge_rate": 0.0, "total_additions": 7,
         "total_deletions": 1, "total_cost_micros": 0, "cost_per_merged_pr_micros": 0},
    ]  # fmt: skip
    assert body["by_model"][0]["display_name"].startswith("Model One")
    prs = body["pull_requests"]
    assert [p["pr_number"] for p in prs] == [3, 2, 1]  # newest first
    assert prs[2] == {
        "chat_id": str(chats["A"]), "pr_title": "", "pr_url": "https://github.com/acme/w/pull/1",
        "pr_number": 1, "state": "merged", "draft": False, "additions": 100, "deletions": 10,
        "changed_files": 0, "commits": 4, "approved": True, "changes_requested": False,
        "reviewer_count": 2, "author_login": "octocat", "base_branch": "",
        "model_display_name": body["by_model"][0]["display_name"], "cost_micros": 1500,
        "created_at": "2002-03-02T10:00:00Z",
    }  # fmt: skip
    assert (prs[0]["draft"], "approved" in prs[0], prs[1]["changes_requested"]) == (
        True, False, True)  # fmt: skip


def test_admins_only_and_parameters(admin: Caller, api_server: str) -> None:
    member = make_caller(api_server)
    try:
        denied = member.http.get(f"{CHATS}/insights/pull-requests")
        assert denied.status_code == 403
    finally:
        member.http.close()
    bad = admin.http.get(f"{CHATS}/insights/pull-requests", params={"start_date": "yesterday"})
    assert bad.status_code == 400
    assert admin.http.get(f"{CHATS}/insights/pull-requests", params={"x": "1"}).status_code == 400
    default = admin.http.get(f"{CHATS}/insights/pull-requests")
    assert default.status_code == 200
    assert len(default.json()["time_series"]) in (30, 31)  # the last 30 days

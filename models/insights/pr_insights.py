"""PR insights report (reference §7 "API"): ``GET /chats/insights/pull-requests``.

The pull requests are the diff statuses with a PR number. A PR belongs to the window in which
it was opened (the provider's ``created_at``, else when the status row appeared); figures:

- ``summary``: PRs opened in the window, how many of those are merged ([inferred]: the
  cohort, so the merge rate stays within 0–1), merge rate = merged / created, line totals,
  cost (each PR's chat tree: its root and subagents, all time, from the rollups), cost per
  merged PR = cost / merged, approval rate = approved / created; ``prev_*`` for the window of
  equal length just before.
- ``time_series``: one entry per UTC day of the window ([inferred] zero-filled, ``date`` is
  the day's midnight in RFC 3339): PRs opened, merged (by merge time) and closed without merge
  (by close time) that day.
- ``by_model``: per model config of the PR's chat (its last model), by PRs descending.
- ``pull_requests`` ([inferred] key): the window's PRs, newest first, at most 100.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models.chat.tables import Chat
from models.chat.wire import ts
from models.insights.diff_statuses import ChatDiffStatus
from models.providers.tables import ChatModelConfig
from models.usage.cost_reports import tree_costs

MAX_LISTED = 100
_d = ChatDiffStatus.__table__  # type: ignore[attr-defined]
_c = Chat.__table__  # type: ignore[attr-defined]
_m = ChatModelConfig.__table__  # type: ignore[attr-defined]


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _per(cost: int, count: int) -> int:
    return cost // count if count else 0


@dataclass
class _Totals:
    created: int = 0
    merged: int = 0
    approved: int = 0
    additions: int = 0
    deletions: int = 0
    cost: int = 0
    rows: list[Any] = field(default_factory=list)

    def add(self, row: Any, cost: int) -> None:
        self.created += 1
        self.merged += row.pull_request_state == "merged"
        self.approved += bool(row.approved)
        self.additions += row.additions or 0
        self.deletions += row.deletions or 0
        self.cost += cost
        self.rows.append(row)


def _pull_rows(session: Session, lo: datetime, hi: datetime) -> list[Any]:
    opened = sa.func.coalesce(_d.c.pr_created_at, _d.c.created_at)
    return list(
        session.execute(
            sa.select(
                _d,
                opened.label("opened_at"),
                sa.func.coalesce(_c.c.root_chat_id, _c.c.id).label("root_id"),
                _c.c.last_model_config_id,
                _m.c.display_name,
                _m.c.model,
                _m.c.provider,
            )
            .select_from(
                _d.join(_c, _c.c.id == _d.c.chat_id).outerjoin(
                    _m, _m.c.id == _c.c.last_model_config_id
                )
            )
            .where(
                _d.c.pr_number.is_not(None),
                sa.or_(
                    sa.and_(opened >= lo, opened < hi),
                    sa.and_(_d.c.pr_merged_at >= lo, _d.c.pr_merged_at < hi),
                    sa.and_(_d.c.pr_closed_at >= lo, _d.c.pr_closed_at < hi),
                ),
            )
            .order_by(opened.desc(), _d.c.chat_id)
        ).all()
    )


def _pull_json(row: Any, cost: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "chat_id": str(row.chat_id),
        "pr_title": row.pull_request_title,
        "state": row.pull_request_state or "",
        "draft": row.pull_request_draft,
        "additions": row.additions or 0,
        "deletions": row.deletions or 0,
        "changed_files": row.changed_files or 0,
        "changes_requested": row.changes_requested,
        "base_branch": row.base_branch or "",
        "model_display_name": row.display_name or row.model or "",
        "cost_micros": cost,
        "created_at": ts(row.opened_at),
    }
    optional = {
        "pr_url": row.url,
        "pr_number": row.pr_number,
        "commits": row.commits,
        "approved": row.approved,
        "reviewer_count": row.reviewer_count,
        "author_login": row.author_login,
        "author_avatar_url": row.author_avatar_url,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def _time_series(rows: list[Any], start: datetime, end: datetime) -> list[dict[str, Any]]:
    day = datetime.combine(start.astimezone(UTC).date(), time(), UTC)
    days: dict[datetime, dict[str, int]] = {}
    while day < end:
        days[day] = {"prs_created": 0, "prs_merged": 0, "prs_closed": 0}
        day += timedelta(days=1)

    def bump(at: datetime | None, key: str) -> None:
        if at is not None and start <= at < end:
            days[datetime.combine(at.astimezone(UTC).date(), time(), UTC)][key] += 1

    for row in rows:
        bump(row.opened_at, "prs_created")
        if row.pull_request_state == "merged":
            bump(row.pr_merged_at, "prs_merged")
        elif row.pull_request_state == "closed":
            bump(row.pr_closed_at, "prs_closed")
    return [{"date": ts(d), **counts} for d, counts in days.items()]


def _by_model(window: _Totals, costs: dict[uuid.UUID, int]) -> list[dict[str, Any]]:
    groups: dict[Any, _Totals] = defaultdict(_Totals)
    names: dict[Any, Any] = {}
    for row in window.rows:
        groups[row.last_model_config_id].add(row, costs.get(row.root_id, 0))
        names[row.last_model_config_id] = row
    out = [
        {
            "model_config_id": str(key) if key else None,
            "display_name": names[key].display_name or names[key].model or "",
            "provider": names[key].provider or "",
            "total_prs": t.created,
            "merged_prs": t.merged,
            "merge_rate": _rate(t.merged, t.created),
            "total_additions": t.additions,
            "total_deletions": t.deletions,
            "total_cost_micros": t.cost,
            "cost_per_merged_pr_micros": _per(t.cost, t.merged),
        }
        for key, t in groups.items()
    ]
    out.sort(key=lambda r: (-r["total_prs"], r["display_name"], r["model_config_id"] or ""))  # type: ignore[operator]
    return out


def pull_request_insights(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """The whole response body for the window [start, end)."""
    prev_start = start - (end - start)
    rows = _pull_rows(session, prev_start, end)
    costs = tree_costs(session, sorted({r.root_id for r in rows}))
    now, prev = _Totals(), _Totals()
    for row in rows:
        if start <= row.opened_at < end:
            now.add(row, costs.get(row.root_id, 0))
        elif prev_start <= row.opened_at < start:
            prev.add(row, costs.get(row.root_id, 0))
    summary = {
        "total_prs_created": now.created,
        "total_prs_merged": now.merged,
        "merge_rate": _rate(now.merged, now.created),
        "total_additions": now.additions,
        "total_deletions": now.deletions,
        "total_cost_micros": now.cost,
        "cost_per_merged_pr_micros": _per(now.cost, now.merged),
        "approval_rate": _rate(now.approved, now.created),
        "prev_total_prs_created": prev.created,
        "prev_total_prs_merged": prev.merged,
        "prev_merge_rate": _rate(prev.merged, prev.created),
        "prev_cost_per_merged_pr_micros": _per(prev.cost, prev.merged),
    }
    return {
        "summary": summary,
        "time_series": _time_series(rows, start, end),
        "by_model": _by_model(now, costs),
        "pull_requests": [_pull_json(r, costs.get(r.root_id, 0)) for r in now.rows[:MAX_LISTED]],
    }

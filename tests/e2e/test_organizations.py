"""Organizations, members, groups (with the implicit Everyone group) and the chat's
organization rules."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from models import db
from tests.fixtures.farm import Caller, Farm, make_caller

ORGS = "/api/v2/organizations"
CHATS = "/api/experimental/chats"
TEXT = [{"type": "text", "text": "[[reply: hi]]"}]


def new_org(owner: Caller) -> dict[str, Any]:
    name = f"org-{uuid.uuid4().hex[:8]}"
    resp = owner.http.post(ORGS, json={"name": name, "description": "a team"})
    assert resp.status_code == 201, resp.text
    return resp.json()


def members(caller: Caller, org: dict[str, Any]) -> list[str]:
    resp = caller.http.get(f"{ORGS}/{org['id']}/members")
    assert resp.status_code == 200, resp.text
    return sorted(m["username"] for m in resp.json())


def test_organizations_are_visible_to_members_and_admins(
    bare_owner: Caller, user_admin: Caller, caller: Caller
) -> None:
    org = new_org(bare_owner)
    assert org["display_name"] == org["name"] and org["is_default"] is False
    assert members(bare_owner, org) == [bare_owner.username]  # the creator is a member
    for ref in (org["id"], org["name"]):
        assert bare_owner.http.get(f"{ORGS}/{ref}").json()["id"] == org["id"]
    assert user_admin.http.get(f"{ORGS}/{org['id']}").status_code == 200
    assert caller.http.get(f"{ORGS}/{org['id']}").status_code == 404
    assert [o["is_default"] for o in caller.http.get(ORGS).json()] == [True]
    assert org["id"] in {o["id"] for o in user_admin.http.get(ORGS).json()}
    assert user_admin.http.post(ORGS, json={"name": "nope"}).status_code == 403
    dup = bare_owner.http.post(ORGS, json={"name": org["name"].upper()})
    assert dup.status_code == 409
    renamed = bare_owner.http.patch(f"{ORGS}/{org['id']}", json={"display_name": "Platform"})
    assert renamed.status_code == 200 and renamed.json()["display_name"] == "Platform"
    assert user_admin.http.patch(f"{ORGS}/{org['id']}", json={"icon": "x"}).status_code == 403


def test_members_are_added_and_removed_by_admins(
    bare_owner: Caller, user_admin: Caller, caller: Caller
) -> None:
    org = new_org(bare_owner)
    url = f"{ORGS}/{org['id']}/members/{caller.username}"
    assert (
        caller.http.post(CHATS, json={"content": TEXT, "organization_id": org["id"]}).json()[
            "message"
        ]
        == "You are not a member of the specified organization."
    )
    added = user_admin.http.post(url)
    assert added.status_code == 200 and added.json()["username"] == caller.username
    assert user_admin.http.post(url).status_code == 409
    assert members(caller, org) == sorted([bare_owner.username, caller.username])
    chat = caller.http.post(CHATS, json={"content": TEXT, "organization_id": org["id"]})
    assert chat.status_code == 201 and chat.json()["organization_id"] == org["id"]
    assert caller.http.delete(url).status_code == 403
    self_removal = bare_owner.http.delete(f"{ORGS}/{org['id']}/members/me")
    assert self_removal.status_code == 400
    assert user_admin.http.delete(url).status_code == 204
    assert user_admin.http.delete(url).status_code == 404
    refused = caller.http.post(CHATS, json={"content": TEXT, "organization_id": org["id"]})
    assert refused.status_code == 403
    assert caller.http.get(f"{ORGS}/{org['id']}").status_code == 404
    # The chat they made there stays theirs.
    assert caller.http.get(f"{CHATS}/{chat.json()['id']}").status_code == 200


def test_groups_and_their_members(
    farm: Farm, bare_owner: Caller, user_admin: Caller, caller: Caller, other_caller: Caller
) -> None:
    org = new_org(bare_owner)
    for c in (caller, other_caller):
        assert bare_owner.http.post(f"{ORGS}/{org['id']}/members/{c.user_id}").status_code == 200
    groups_url = f"{ORGS}/{org['id']}/groups"
    (everyone,) = caller.http.get(groups_url).json()
    assert everyone["id"] == org["id"] and everyone["name"] == "Everyone"
    assert everyone["total_member_count"] == 3  # implicit: every member of the organization
    made = user_admin.http.post(groups_url, json={"name": "platform", "display_name": "Platform"})
    assert made.status_code == 201, made.text
    group = made.json()
    assert group["members"] == [] and group["organization_name"] == org["name"]
    assert caller.http.post(groups_url, json={"name": "mine"}).status_code == 403
    assert user_admin.http.post(groups_url, json={"name": "Platform"}).status_code == 409
    reserved = user_admin.http.post(groups_url, json={"name": "everyone"})
    assert reserved.status_code == 400 and reserved.json()["message"] == "Invalid group name."

    url = f"/api/v2/groups/{group['id']}"
    ids = [str(caller.user_id), str(other_caller.user_id)]
    patched = user_admin.http.patch(url, json={"add_users": ids, "name": "platform-team"})
    assert patched.status_code == 200, patched.text
    assert sorted(m["id"] for m in patched.json()["members"]) == sorted(ids)
    assert patched.json()["name"] == "platform-team"
    assert caller.http.get(url).json()["total_member_count"] == 2
    assert caller.http.patch(url, json={"remove_users": ids}).status_code == 403
    outsider = make_caller(farm.base_url)
    try:
        refused = bare_owner.http.patch(url, json={"add_users": [str(outsider.user_id)]})
        assert refused.status_code == 400
        assert refused.json()["message"].endswith(
            f'must be a member of organization "{org["name"]}".'
        )
        assert outsider.http.get(url).status_code == 404
    finally:
        outsider.http.close()
    bad = bare_owner.http.patch(url, json={"add_users": ["not-a-uuid"]})
    assert bad.json()["message"] == 'ID "not-a-uuid" must be a valid user UUID.'

    # Leaving the organization leaves its groups.
    assert (
        bare_owner.http.delete(f"{ORGS}/{org['id']}/members/{other_caller.user_id}").status_code
        == 204
    )
    left = bare_owner.http.get(url).json()
    assert [m["id"] for m in left["members"]] == [str(caller.user_id)]
    removed = bare_owner.http.patch(url, json={"remove_users": [str(caller.user_id)]})
    assert removed.json()["members"] == []

    everyone_url = f"/api/v2/groups/{everyone['id']}"
    for body in ({"add_users": ids[:1]}, {"name": "all"}):
        assert bare_owner.http.patch(everyone_url, json=body).status_code == 400, body
    assert bare_owner.http.delete(everyone_url).status_code == 400
    deleted = user_admin.http.delete(url)
    assert deleted.status_code == 200 and bare_owner.http.get(url).status_code == 404


def test_every_organization_has_its_everyone_group() -> None:
    # Even one inserted straight into the table (a trigger creates the group).
    with db.session_scope() as session:
        org_id = session.execute(
            sa.text("INSERT INTO organizations (name) VALUES (:n) RETURNING id"),
            {"n": f"raw-{uuid.uuid4().hex[:8]}"},
        ).scalar_one()
        row = session.execute(
            sa.text("SELECT name, organization_id FROM groups WHERE id = :id"), {"id": org_id}
        ).one()
    assert tuple(row) == ("Everyone", org_id)


def test_chat_needs_an_organization_and_a_workspace_from_the_same_one(
    farm: Farm, bare_owner: Caller, caller: Caller
) -> None:
    from models.identity.tables import OrganizationMember
    from models.workspaces.rules import create_template
    from models.workspaces.tables import Workspace

    org = new_org(bare_owner)
    assert bare_owner.http.post(f"{ORGS}/{org['id']}/members/{caller.user_id}").status_code == 200
    with db.session_scope() as session:
        template = create_template(session, organization_id=uuid.UUID(org["id"]), name="t")
        workspace = Workspace(
            owner_id=caller.user_id,
            organization_id=uuid.UUID(org["id"]),
            template_id=template.id,
            name="ws",
            host="local",
            directory="/nonexistent",
            status="stopped",
        )
        session.add(workspace)
        session.flush()
        workspace_id = str(workspace.id)
    body = {"content": TEXT, "workspace_id": workspace_id}
    wrong = caller.http.post(CHATS, json=body)  # in the default organization
    assert wrong.status_code == 400
    assert wrong.json()["message"] == "Workspace does not belong to the specified organization."
    right = caller.http.post(CHATS, json={**body, "organization_id": org["id"]})
    assert right.status_code == 201 and right.json()["workspace_id"] == workspace_id

    loner = make_caller(farm.base_url)
    try:
        with db.session_scope() as session:
            session.execute(
                sa.delete(OrganizationMember).where(OrganizationMember.user_id == loner.user_id)
            )
        resp = loner.http.post(CHATS, json={"content": TEXT})
        assert resp.status_code == 403
        assert resp.json()["message"] == "You are not a member of the specified organization."
    finally:
        loner.http.close()

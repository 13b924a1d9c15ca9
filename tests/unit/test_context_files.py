"""workers.context_files: AGENTS.md context-file parts, skills discovery and the skill tools."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from workers.tools import context_files as cf
from workers.tools.context_files import Skill, SkillError


def write(path: Path, text: str | bytes) -> Path:
    """Create `path` (and its parents) with the given text or bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def make_skill(root: Path, folder: str, frontmatter: str | None, body: str = "Body.\n") -> Path:
    """Write `.agents/skills/<folder>/SKILL.md`; `frontmatter` None means no `---` block."""
    head = "" if frontmatter is None else f"---\n{frontmatter}\n---\n"
    return write(root / ".agents" / "skills" / folder / "SKILL.md", head + body).parent


# ---------------------------------------------------------------- instruction files


def test_agents_md_becomes_a_context_file_part(tmp_path: Path) -> None:
    write(tmp_path / "AGENTS.md", "Use tabs.\n")
    assert cf.read_instruction_files(tmp_path) == [
        {
            "type": "context-file",
            "context_file_path": str(tmp_path / "AGENTS.md"),
            "context_file_content": "Use tabs.\n",
        }
    ]


def test_no_agents_md_gives_no_parts(tmp_path: Path) -> None:
    write(tmp_path / "CLAUDE.md", "later versions only")
    write(tmp_path / ".cursorrules", "later versions only")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "AGENTS.md", "not at the root")
    assert cf.read_instruction_files(tmp_path) == []


def test_blank_agents_md_and_directory_named_agents_md_are_ignored(tmp_path: Path) -> None:
    write(tmp_path / "AGENTS.md", " \n\n")
    assert cf.read_instruction_files(tmp_path) == []
    (tmp_path / "AGENTS.md").unlink()
    (tmp_path / "AGENTS.md").mkdir()
    assert cf.read_instruction_files(tmp_path) == []


def test_home_coder_agents_md_comes_first_when_home_is_given(tmp_path: Path) -> None:
    home, root = tmp_path / "home", tmp_path / "ws"
    write(home / ".coder" / "AGENTS.md", "global")
    write(root / "AGENTS.md", "local")
    parts = cf.read_instruction_files(root, home=home)
    assert [p["context_file_content"] for p in parts] == ["global", "local"]
    assert parts[0]["context_file_path"] == str(home / ".coder" / "AGENTS.md")
    assert [p["context_file_content"] for p in cf.read_instruction_files(root)] == ["local"]


def test_exactly_cap_sized_file_is_not_truncated(tmp_path: Path) -> None:
    write(tmp_path / "AGENTS.md", "a" * cf.MAX_INSTRUCTION_BYTES)
    (part,) = cf.read_instruction_files(tmp_path)
    assert len(part["context_file_content"]) == cf.MAX_INSTRUCTION_BYTES
    assert "context_file_truncated" not in part


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_over_cap_is_truncated_on_a_utf8_boundary(tmp_path: Path, offset: int) -> None:
    # `offset` ASCII bytes shift the 4-byte emoji so the cap falls at each position inside one.
    text = "a" * offset + "\U0001f600" * (cf.MAX_INSTRUCTION_BYTES // 4 + 2)
    write(tmp_path / "AGENTS.md", text)
    (part,) = cf.read_instruction_files(tmp_path)
    assert part["context_file_truncated"] is True
    content = part["context_file_content"]
    size = len(content.encode("utf-8"))
    assert "\ufffd" not in content
    assert cf.MAX_INSTRUCTION_BYTES - 3 <= size <= cf.MAX_INSTRUCTION_BYTES
    assert text.encode("utf-8").startswith(content.encode("utf-8"))
    expected = offset + (cf.MAX_INSTRUCTION_BYTES - offset) // 4 * 4
    assert size == expected


def test_over_cap_ascii_is_cut_at_exactly_the_cap(tmp_path: Path) -> None:
    write(tmp_path / "AGENTS.md", "é" + "b" * cf.MAX_INSTRUCTION_BYTES)
    (part,) = cf.read_instruction_files(tmp_path)
    assert len(part["context_file_content"].encode("utf-8")) == cf.MAX_INSTRUCTION_BYTES
    assert part["context_file_truncated"] is True


# ---------------------------------------------------------------- discovery


def test_no_skills_directory(tmp_path: Path) -> None:
    assert cf.discover_skills(tmp_path) == ([], [])
    assert cf.available_skills_prompt([]) == ""


def test_valid_skills_sorted_with_quoted_and_block_values(tmp_path: Path) -> None:
    zed = make_skill(tmp_path, "zed", 'name: "zed"\ndescription: "Says \\"hi\\": loudly"')
    alpha = make_skill(
        tmp_path,
        "alpha-2",
        "# comment\nname: 'alpha-2'\ndescription: >\n  Deploys the app\n  to staging.\nother: x",
    )
    plain = make_skill(tmp_path, "plain", "name: plain  # trailing comment\ndescription: a: b")
    skills, warnings = cf.discover_skills(tmp_path)
    assert warnings == []
    assert skills == [
        Skill("alpha-2", "Deploys the app to staging.", alpha),
        Skill("plain", "a: b", plain),
        Skill("zed", 'Says "hi": loudly', zed),
    ]
    assert all(s.dir.is_absolute() for s in skills)


def test_missing_description_is_allowed_per_reference(tmp_path: Path) -> None:
    make_skill(tmp_path, "bare", "name: bare")
    assert cf.discover_skills(tmp_path) == (
        [Skill("bare", "", tmp_path / ".agents/skills/bare")],
        [],
    )


@pytest.mark.parametrize(
    ("folder", "frontmatter", "reason"),
    [
        ("foo", "name: bar\ndescription: d", 'name "bar" does not match its directory name "foo"'),
        ("Foo", "name: Foo\ndescription: d", 'name "Foo" is not kebab-case'),
        ("a--b", "name: a--b\ndescription: d", 'name "a--b" is not kebab-case'),
        ("snake_case", "name: snake_case", 'name "snake_case" is not kebab-case'),
        ("nameless", "description: d", 'frontmatter has no "name"'),
        ("blank", 'name: ""\ndescription: d', 'frontmatter has no "name"'),
        ("plain-md", None, "SKILL.md has no frontmatter"),
    ],
)
def test_invalid_skills_are_skipped_with_a_warning(
    tmp_path: Path, folder: str, frontmatter: str | None, reason: str
) -> None:
    make_skill(tmp_path, "good", "name: good\ndescription: fine")
    make_skill(tmp_path, folder, frontmatter)
    skills, warnings = cf.discover_skills(tmp_path)
    assert [s.name for s in skills] == ["good"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"skipped skill .agents/skills/{folder}: {reason}")


def test_unclosed_frontmatter_and_missing_skill_md_warn(tmp_path: Path) -> None:
    write(tmp_path / ".agents/skills/open/SKILL.md", "---\nname: open\n")
    (tmp_path / ".agents/skills/empty").mkdir()
    (tmp_path / ".agents/skills/.hidden").mkdir()
    write(tmp_path / ".agents/skills/README.md", "not a skill")
    skills, warnings = cf.discover_skills(tmp_path)
    assert skills == []
    assert warnings == [
        "skipped skill .agents/skills/empty: SKILL.md is missing",
        "skipped skill .agents/skills/open: SKILL.md has no frontmatter"
        " (a leading --- block with name and description)",
    ]


def test_skill_parts_and_prompt_block(tmp_path: Path) -> None:
    make_skill(tmp_path, "deploy", "name: deploy\ndescription: Ship it\n  to prod.")
    make_skill(tmp_path, "lint", "name: lint")
    skills, _ = cf.discover_skills(tmp_path)
    parts = cf.skill_parts(skills)
    assert parts[0] == {
        "type": "skill",
        "skill_name": "deploy",
        "skill_description": "Ship it to prod.",
        "skill_dir": str(tmp_path / ".agents/skills/deploy"),
    }
    prompt = cf.available_skills_prompt(skills)
    assert prompt.startswith("<available-skills>\n")
    assert prompt.endswith("\n- deploy: Ship it to prod.\n- lint\n</available-skills>")
    assert "read_skill " in prompt and "read_skill_file" in prompt
    assert [cf.public_part(p) for p in parts][1] == {
        "type": "skill",
        "skill_name": "lint",
        "skill_description": "",
    }


# ---------------------------------------------------------------- read_skill


@pytest.fixture
def skill(tmp_path: Path) -> Path:
    """A `tools` skill with supporting files, hidden entries and an escaping symlink."""
    d = make_skill(tmp_path, "tools", "name: tools\ndescription: d", body="\n# Tools\nRun it.\n")
    write(d / "scripts" / "run.sh", "echo hi\n")
    write(d / "ref.md", "reference\n")
    write(d / ".env", "SECRET=1\n")
    write(d / ".git" / "config", "x")
    write(d / "scripts" / ".cache", "x")
    write(d / "blob.bin", b"\x00\x01\x02")
    write(tmp_path / "outside.txt", "outside secret\n")
    os.symlink(tmp_path / "outside.txt", d / "escape.txt")
    os.symlink(tmp_path, d / "escape-dir")
    os.symlink(d / "ref.md", d / "alias.md")
    return tmp_path


def test_read_skill_body_and_files(skill: Path) -> None:
    assert cf.read_skill(skill, "tools") == {
        "name": "tools",
        "body": "# Tools\nRun it.",
        "files": ["alias.md", "blob.bin", "ref.md", "scripts/run.sh"],
    }


@pytest.mark.parametrize("name", ["nope", "../tools", "Tools", "", "tools/"])
def test_read_skill_unknown(skill: Path, name: str) -> None:
    with pytest.raises(SkillError, match="unknown skill"):
        cf.read_skill(skill, name)


def test_read_skill_invalid_frontmatter(tmp_path: Path) -> None:
    make_skill(tmp_path, "bad", "name: other")
    with pytest.raises(SkillError, match='skill "bad" is invalid: name "other" does not match'):
        cf.read_skill(tmp_path, "bad")


def test_read_skill_body_is_capped(tmp_path: Path) -> None:
    make_skill(tmp_path, "big", "name: big", body="x" * (cf.MAX_SKILL_BYTES + 10))
    body = cf.read_skill(tmp_path, "big")["body"]
    assert len(body) == cf.MAX_SKILL_BYTES - len("---\nname: big\n---\n")


# ---------------------------------------------------------------- read_skill_file


def test_read_skill_file_ok(skill: Path) -> None:
    assert cf.read_skill_file(skill, "tools", "scripts/run.sh") == {
        "name": "tools",
        "path": "scripts/run.sh",
        "content": "echo hi\n",
    }
    assert cf.read_skill_file(skill, "tools", "./alias.md")["content"] == "reference\n"


def test_read_skill_file_is_capped_on_utf8_boundary(skill: Path) -> None:
    # "a" shifts the 2-byte characters so the cap falls inside one: it is dropped whole.
    write(skill / ".agents/skills/tools/big.txt", "a" + "é" * cf.MAX_SKILL_FILE_BYTES)
    content = cf.read_skill_file(skill, "tools", "big.txt")["content"]
    assert content == "a" + "é" * (cf.MAX_SKILL_FILE_BYTES // 2 - 1)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc/passwd", "must be relative to the skill directory, not absolute"),
        ("\\windows", "not absolute"),
        ("C:/x", "not absolute"),
        ("../tools/ref.md", 'must not contain ".." components'),
        ("scripts/../../outside.txt", 'must not contain ".."'),
        ("..\\outside.txt", 'must not contain ".."'),
        (".env", "hidden file or directory"),
        (".git/config", "hidden file or directory"),
        ("scripts/.cache", "hidden file or directory"),
        ("escape.txt", "resolves outside the skill directory"),
        ("escape-dir/outside.txt", "resolves outside the skill directory"),
        ("missing.md", 'file "missing.md" not found in skill "tools"'),
        ("scripts", "is a directory"),
        (".", "is the skill directory itself"),
        ("", "path is required"),
        ("blob.bin", "is binary"),
    ],
)
def test_read_skill_file_rejections(skill: Path, path: str, message: str) -> None:
    with pytest.raises(SkillError, match=re.escape(message)):
        cf.read_skill_file(skill, "tools", path)


def test_symlink_to_hidden_file_inside_skill_is_rejected(skill: Path) -> None:
    os.symlink(skill / ".agents/skills/tools/.env", skill / ".agents/skills/tools/env.txt")
    with pytest.raises(SkillError, match="hidden"):
        cf.read_skill_file(skill, "tools", "env.txt")


def test_read_skill_file_unknown_skill(skill: Path) -> None:
    with pytest.raises(SkillError, match="unknown skill"):
        cf.read_skill_file(skill, "ghost", "ref.md")


# ---------------------------------------------------------------- public_part / context_prompt


def test_public_part_strips_internal_keys_only() -> None:
    part = {
        "type": "context-file",
        "context_file_path": "/w/AGENTS.md",
        "context_file_truncated": True,
        "context_file_agent_id": "a1",
        "context_file_content": "secret",
        "context_file_os": "linux",
        "context_file_directory": "/w",
        "provider_metadata": {"x": 1},
        "skill_dir": "/w/.agents/skills/x",
        "context_file_skill_meta_file": "SKILL.md",
    }
    assert cf.public_part(part) == {
        "type": "context-file",
        "context_file_path": "/w/AGENTS.md",
        "context_file_truncated": True,
        "context_file_agent_id": "a1",
    }
    assert part["context_file_content"] == "secret"  # input untouched
    text = {"type": "text", "text": "hi", "signature": "s"}
    assert cf.public_part(text) == text


def test_context_prompt(tmp_path: Path) -> None:
    write(tmp_path / "AGENTS.md", "Be brief.")
    make_skill(tmp_path, "deploy", "name: deploy\ndescription: Ship")
    parts = cf.read_instruction_files(tmp_path) + cf.skill_parts(cf.discover_skills(tmp_path)[0])
    parts.append({"type": "text", "text": "ignored"})
    prompt = cf.context_prompt(parts)
    assert prompt.startswith(f"Instructions from {tmp_path / 'AGENTS.md'}:\nBe brief.\n\n")
    assert prompt.endswith("- deploy: Ship\n</available-skills>")
    truncated = {**parts[0], "context_file_truncated": True}
    assert "(truncated at 64 KiB):" in cf.context_prompt([truncated])
    assert cf.context_prompt([cf.public_part(parts[0])]) == ""
    assert cf.context_prompt([]) == ""

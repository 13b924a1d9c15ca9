"""Workspace context for a chat: AGENTS.md instruction files and `.agents/skills` skills.

Pure filesystem code (no broker, no database). It reads a local workspace directory and builds
the `context-file` / `skill` message parts the chat loop persists, the prompt text the model
sees for them, and the results of the `read_skill` / `read_skill_file` tools.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MAX_INSTRUCTION_BYTES = 64 * 1024
MAX_SKILL_BYTES = 64 * 1024
MAX_SKILL_FILE_BYTES = 512 * 1024
MAX_SKILL_FILES = 500
SKILLS_DIR = PurePosixPath(".agents/skills")
# Keys stored in parts but never sent to API clients (reference §1.3).
INTERNAL_KEYS = frozenset(
    ("context_file_content", "context_file_os", "context_file_directory", "provider_metadata")
    + ("skill_dir", "context_file_skill_meta_file")
)

_NAME_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_KEY_RE = re.compile(r"^([A-Za-z0-9_-]+)\s*:(?:\s+(.*)|\s*)$")
_DQ_RE = re.compile(r'^"((?:[^"\\]|\\.)*)"\s*(?:#.*)?$')
_SQ_RE = re.compile(r"^'((?:[^']|'')*)'\s*(?:#.*)?$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/", "0": "\0"}


class SkillError(Exception):
    """A read_skill / read_skill_file call that cannot be served; the message is for the model."""


@dataclass(frozen=True)
class Skill:
    """A valid skill found in the workspace (frontmatter only; the body loads lazily)."""

    name: str
    description: str
    dir: Path


def _read_capped(path: Path, cap: int) -> tuple[bytes, bool]:
    """Read at most `cap` bytes, cut back to a UTF-8 character boundary; (data, truncated)."""
    with path.open("rb") as fh:
        data = fh.read(cap + 1)
    if len(data) <= cap:
        return data, False
    cut = cap
    # data[cut] is the first dropped byte; while it continues a character, drop that one too.
    while cut > max(0, cap - 4) and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut], True


def _decode(data: bytes) -> str:
    """Text of (possibly non-UTF-8) file bytes; invalid sequences become U+FFFD."""
    return data.decode("utf-8", errors="replace")


def read_instruction_files(root: Path, home: Path | None = None) -> list[dict[str, Any]]:
    """Read `<home>/.coder/AGENTS.md` (only when `home` is given) then `<root>/AGENTS.md`.

    Each existing, non-blank file becomes a `context-file` part; content is capped at 64 KiB on
    a UTF-8 boundary and `context_file_truncated` is set only when the cap applied.
    """
    candidates = [Path(home) / ".coder" / "AGENTS.md"] if home is not None else []
    candidates.append(Path(root) / "AGENTS.md")
    parts: list[dict[str, Any]] = []
    for path in candidates:
        try:
            if not path.is_file():
                continue
            data, truncated = _read_capped(path, MAX_INSTRUCTION_BYTES)
        except OSError:
            continue
        content = _decode(data)
        if not content.strip():
            continue
        part: dict[str, Any] = {
            "type": "context-file",
            "context_file_path": str(path.absolute()),
            "context_file_content": content,
        }
        if truncated:
            part["context_file_truncated"] = True
        parts.append(part)
    return parts


def _unquote(raw: str) -> str:
    """A YAML scalar value: double/single quoted (with escapes) or plain (comment stripped)."""
    if m := _DQ_RE.match(raw):
        return re.sub(r"\\(.)", lambda e: _ESCAPES.get(e.group(1), e.group(0)), m.group(1))
    if m := _SQ_RE.match(raw):
        return m.group(1).replace("''", "'")
    return re.sub(r"(^|\s+)#.*$", "", raw).strip()


def _parse_frontmatter(text: str) -> tuple[dict[str, str], str] | None:
    """Split a `---` frontmatter block of `key: value` lines from the body; None if absent.

    Supports quoted values, indented continuation lines and `|` / `>` block scalars, which is
    all SKILL.md frontmatter uses in practice. Nested mappings and lists are ignored.
    """
    lines = text.removeprefix("\ufeff").splitlines()
    if not lines or lines[0].rstrip() != "---":
        return None
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
    if end is None:
        return None
    fields: dict[str, str] = {}
    i = 1
    while i < end:
        m = _KEY_RE.match(lines[i])
        i += 1
        if not m:
            continue  # comments, blank lines, stray indentation
        key, value = m.group(1), (m.group(2) or "").strip()
        more: list[str] = []
        while i < end and (not lines[i].strip() or lines[i][:1] in (" ", "\t")):
            more.append(lines[i].strip())
            i += 1
        if value[:1] in ("|", ">") and value.rstrip("+-0123456789") in ("|", ">"):
            sep = "\n" if value[0] == "|" else " "
            fields[key] = sep.join(more).strip()
        else:
            fields[key] = _unquote(" ".join([value, *more]).strip())
    return fields, "\n".join(lines[end + 1 :])


def _parse_skill(skill_dir: Path) -> tuple[dict[str, str], str] | str:
    """(frontmatter, body) of `<skill_dir>/SKILL.md`, or why it is not a usable skill."""
    try:
        if not (skill_dir / "SKILL.md").is_file():
            return "SKILL.md is missing"
        data, _ = _read_capped(skill_dir / "SKILL.md", MAX_SKILL_BYTES)
    except OSError as exc:
        return f"SKILL.md cannot be read: {exc.strerror or exc}"
    parsed = _parse_frontmatter(_decode(data))
    if parsed is None:
        return "SKILL.md has no frontmatter (a leading --- block with name and description)"
    name = parsed[0].get("name", "")
    if not name:
        return 'frontmatter has no "name"'
    if not _NAME_RE.fullmatch(name):
        return f'name "{name}" is not kebab-case (lowercase letters, digits and single hyphens)'
    if name != skill_dir.name:
        return f'name "{name}" does not match its directory name "{skill_dir.name}"'
    return parsed


def discover_skills(root: Path) -> tuple[list[Skill], list[str]]:
    """Scan `<root>/.agents/skills/<name>/SKILL.md` frontmatter; (valid skills, warnings).

    Hidden directories and plain files in the skills folder are ignored without a warning;
    every other skipped directory produces one warning naming it and the reason.
    """
    base = Path(root) / SKILLS_DIR
    if not base.is_dir():
        return [], []
    skills: list[Skill] = []
    warnings: list[str] = []
    for entry in sorted(base.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        parsed = _parse_skill(entry)
        if isinstance(parsed, str):
            warnings.append(f"skipped skill {(SKILLS_DIR / entry.name).as_posix()}: {parsed}")
            continue
        description = " ".join(parsed[0].get("description", "").split())
        skills.append(Skill(name=entry.name, description=description, dir=entry.absolute()))
    return skills, warnings


def skill_parts(skills: list[Skill]) -> list[dict[str, Any]]:
    """The `skill` message parts to persist (`skill_dir` is internal, see `public_part`)."""
    return [
        {
            "type": "skill",
            "skill_name": s.name,
            "skill_description": s.description,
            "skill_dir": str(s.dir),
        }
        for s in skills
    ]


def available_skills_prompt(skills: list[Skill]) -> str:
    """The `<available-skills>` system-context block; "" when there are no skills."""
    if not skills:
        return ""
    lines = [
        "<available-skills>",
        "The workspace provides these skills (task-specific instructions under .agents/skills/)."
        " When a task matches a skill's description, call read_skill with the skill's name to"
        " load its full instructions before acting, and read_skill_file with the skill's name"
        " and a path relative to the skill directory to read a supporting file it references.",
        "",
    ]
    for s in skills:
        lines.append(f"- {s.name}: {s.description}" if s.description else f"- {s.name}")
    lines.append("</available-skills>")
    return "\n".join(lines)


def _load_skill(root: Path, name: str) -> tuple[Path, str]:
    """(skill directory, SKILL.md body) for a valid skill, else SkillError."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SkillError(f'unknown skill "{name}"')
    skill_dir = Path(root) / SKILLS_DIR / name
    if not (skill_dir / "SKILL.md").is_file():
        raise SkillError(f'unknown skill "{name}"')
    parsed = _parse_skill(skill_dir)
    if isinstance(parsed, str):
        raise SkillError(f'skill "{name}" is invalid: {parsed}')
    return skill_dir.absolute(), parsed[1].strip("\n")


def _list_files(skill_dir: Path) -> list[str]:
    """Supporting files relative to the skill dir: no SKILL.md, nothing hidden or escaping."""
    real = skill_dir.resolve()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(skill_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fname in filenames:
            path = Path(dirpath) / fname
            rel = path.relative_to(skill_dir).as_posix()
            if fname.startswith(".") or rel == "SKILL.md":
                continue
            if path.resolve().is_relative_to(real) and path.is_file():
                found.append(rel)
    return sorted(found)[:MAX_SKILL_FILES]


def read_skill(root: Path, name: str) -> dict[str, Any]:
    """The read_skill tool: SKILL.md body (frontmatter removed, 64 KiB cap) and file list."""
    skill_dir, body = _load_skill(root, name)
    return {"name": name, "body": body, "files": _list_files(skill_dir)}


def read_skill_file(root: Path, name: str, path: str) -> dict[str, Any]:
    """The read_skill_file tool: a supporting text file of a skill, capped at 512 KiB."""
    skill_dir, _ = _load_skill(root, name)
    if not isinstance(path, str) or not path.strip():
        raise SkillError("path is required (a file path relative to the skill directory)")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise SkillError(f'path "{path}" must be relative to the skill directory, not absolute')
    rel = PurePosixPath(path.replace("\\", "/"))
    if ".." in rel.parts:
        raise SkillError(f'path "{path}" must not contain ".." components')
    if not rel.parts:
        raise SkillError(f'path "{path}" is the skill directory itself, not a file')
    real_dir = skill_dir.resolve()
    target = (skill_dir / rel).resolve()
    if not target.is_relative_to(real_dir):
        raise SkillError(f'path "{path}" resolves outside the skill directory')
    if any(p.startswith(".") for p in (*rel.parts, *target.relative_to(real_dir).parts)):
        raise SkillError(f'path "{path}" refers to a hidden file or directory')
    if not target.exists():
        raise SkillError(f'file "{path}" not found in skill "{name}"')
    if not target.is_file():
        kind = "a directory (read_skill lists the files)" if target.is_dir() else "a special file"
        raise SkillError(f'path "{path}" is {kind}, not a regular file')
    try:
        data, _ = _read_capped(target, MAX_SKILL_FILE_BYTES)
    except OSError as exc:
        raise SkillError(f'file "{path}" cannot be read: {exc.strerror or exc}') from None
    if b"\0" in data:
        raise SkillError(f'file "{path}" is binary; only text files can be read')
    return {"name": name, "path": rel.as_posix(), "content": _decode(data)}


def public_part(part: dict[str, Any]) -> dict[str, Any]:
    """A copy of a message part without the internal-only keys API clients must not see."""
    return {k: v for k, v in part.items() if k not in INTERNAL_KEYS}


def context_prompt(parts: list[dict[str, Any]]) -> str:
    """Model-facing text for persisted parts: one block per `context-file` with content, then
    the `<available-skills>` block rebuilt from `skill` parts; "" when there is nothing."""
    blocks: list[str] = []
    skills: list[Skill] = []
    for part in parts:
        kind = part.get("type")
        if kind == "context-file" and part.get("context_file_content"):
            note = " (truncated at 64 KiB)" if part.get("context_file_truncated") else ""
            header = f"Instructions from {part.get('context_file_path', 'AGENTS.md')}{note}:"
            blocks.append(f"{header}\n{part['context_file_content']}")
        elif kind == "skill" and part.get("skill_name"):
            desc = str(part.get("skill_description") or "")
            skills.append(Skill(part["skill_name"], desc, Path(part.get("skill_dir") or ".")))
    if skills:
        blocks.append(available_skills_prompt(skills))
    return "\n\n".join(blocks)

"""Every reference in the repository resolves: a reader of the repo can open what the code and docs cite.

Markdown links and repo paths named in code, docs and scripts must exist in the tree (or be public
URLs); nothing may point at files outside the repository or at tracker numbers instead of meanings.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".sh", ".txt", ".toml", ".html", ".cfg", ".ini", ""}
TOP_DIRS = "bookings|crm|conferencing|calsync|sandbox|docs|tests|templates|scripts|bench|ops|\\.ci"
# A repo path in prose or code: `docs/operations.md`, `tests/fixtures/calendly/`, `bookings/state.py`.
REPO_PATH = re.compile(rf"(?<![\w./-])(?:{TOP_DIRS})/[\w./-]*[\w/]")
FILE_SUFFIXES = {".py", ".md", ".json", ".txt", ".html", ".sh", ".toml", ".yml", ".yaml", ".png", ".css", ".js"}
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
OUTSIDE = re.compile(
    r"/work/|\bshared/(?:docs|fixtures)\b|\.\./\.\./\.\.|\bdesign\.md\b|\bapi-facts\.md\b|\breference/\w+\.md\b"
)
TRACKER = re.compile(r"\b(?:issue|ticket)s? #?\d+\b", re.IGNORECASE)


def tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout")
    files = [
        ROOT / n
        for n in names
        if Path(n).suffix in TEXT_SUFFIXES and (not n.startswith("tests/fixtures/") or n.endswith(".md"))
    ]
    return [f for f in files if f.is_file() and f.name != Path(__file__).name]


def exists_in_repo(reference: str, *, base: Path) -> bool:
    target = reference.split("#", 1)[0].rstrip(".,:;")
    if not target:
        return True
    if any(ch in target for ch in "*{<"):  # a pattern or placeholder, e.g. templates/crm/*.txt
        return True
    return (base / target).exists() or (ROOT / target).exists() or (ROOT / "templates" / target).exists()


def test_markdown_links_resolve():
    broken = []
    for path in tracked_text_files():
        if path.suffix != ".md":
            continue
        for link in MARKDOWN_LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", link) or link.startswith("#"):
                continue
            if not exists_in_repo(link, base=path.parent):
                broken.append(f"{path.relative_to(ROOT)}: {link}")
    assert broken == []


def test_repo_paths_named_in_code_and_docs_exist():
    broken = []
    for path in tracked_text_files():
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in REPO_PATH.findall(line):
                if "://" in line[: line.find(match)].rsplit(" ", 1)[-1]:
                    continue  # part of a URL
                if not (match.endswith("/") or Path(match).suffix in FILE_SUFFIXES):
                    continue  # "calsync/1.0" in a User-Agent, "calsync/Kommo/Zoom" in prose
                if not exists_in_repo(match, base=path.parent):
                    broken.append(f"{path.relative_to(ROOT)}:{line_no}: {match}")
    assert broken == []


def test_nothing_points_outside_the_repository_or_at_tracker_numbers():
    found = []
    for path in tracked_text_files():
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line) or TRACKER.search(line):
                found.append(f"{path.relative_to(ROOT)}:{line_no}: {line.strip()[:100]}")
    assert found == []

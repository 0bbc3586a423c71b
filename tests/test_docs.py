"""The README and docs stay true to the code: their links lead to files that exist, and every command in
their code blocks names a real command, script or make target with options that exist.
(The README's Python example runs in tests/test_api.py.)"""

import re
import shlex
import subprocess
import sys

import pytest
import typer

from faceparse_edge.cli import app
from tests.conftest import REPO

PAGES = [REPO / "README.md", REPO / "MODEL_CARD.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")


def code_lines(text: str) -> list[str]:
    """The lines of fenced blocks and of 4-space indented blocks (a paragraph's continuation is not code)."""
    lines, fenced, previous_blank = [], False, True
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or (line.startswith("    ") and (previous_blank or (lines and lines[-1] is not None))):
            lines.append(line.strip() if fenced or line.startswith("    ") else None)
            previous_blank = False
            continue
        previous_blank = not line.strip()
        if lines and lines[-1] is not None:
            lines.append(None)  # a block ends
    return [line for line in lines if line]


def commands(prefix_pattern: str) -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in code_lines(page.read_text()):
            line = line.split(" # ")[0].strip()
            match = re.match(prefix_pattern, line)
            if match:
                found.append((f"{page.name}: {line}", shlex.split(line[match.end():])))
    return found


def test_every_link_leads_to_a_file():
    broken = [(page.name, target) for page in PAGES for target in LINK.findall(page.read_text())
              if not target.startswith(("http://", "https://", "mailto:")) and not (page.parent / target).exists()]
    assert broken == []


CLI_COMMANDS = commands(r"^(?:\S*/)?faceparse-edge\s")


def test_the_docs_show_commands():
    assert len(CLI_COMMANDS) >= 20


@pytest.mark.parametrize("where, args", CLI_COMMANDS, ids=[w for w, _ in CLI_COMMANDS])
def test_every_documented_command_and_option_exists(where, args):
    command = typer.main.get_command(app)
    while hasattr(command, "commands"):  # a group (the app, `data`)
        assert args and args[0] in command.commands, f"{where}: no command {args[:1]}"
        command, args = command.commands[args[0]], args[1:]
    options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    unknown = [a.split("=")[0] for a in args if a.startswith("-") and a.split("=")[0] not in options]
    assert unknown == [], f"{where}: {command.name} has no option {unknown}"


# Benchmark scripts are named in code blocks and in inline code (`python benchmarks/NAME.py --option ...`).
SCRIPTS = commands(r"^python\s+(?=benchmarks/)") + [
    (page.name, shlex.split(span)) for page in PAGES for span in re.findall(r"`python (benchmarks/[^`]+)`", page.read_text())]


@pytest.mark.parametrize("script", sorted({args[0] for _, args in SCRIPTS}))
def test_every_documented_benchmark_script_takes_its_options(script):
    assert (REPO / script).is_file(), script
    used = {a.split("=")[0] for _, args in SCRIPTS if args[0] == script for a in args[1:] if a.startswith("--")}
    if used:
        result = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert result.returncode == 0, result.stderr
        assert [o for o in used if o not in result.stdout] == [], script


def test_every_documented_make_target_exists():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    used = {args[0] for _, args in commands(r"^make\s")}
    assert used and used <= targets, used - targets

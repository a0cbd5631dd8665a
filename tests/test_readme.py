"""The README's quickstart holds exactly two commands, and CI runs the second one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    block = re.search(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_quickstart_has_two_commands():
    cmds = quickstart_commands()
    assert len(cmds) == 2
    assert "scarce quickstart" in cmds[0] or "scarce bench" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert quickstart_commands()[1] in ci

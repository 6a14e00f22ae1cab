"""Every Python example in docs/python.md runs as written: each ```python block is saved verbatim in
a fresh directory, run with this interpreter (where `helios` is installed), and its exit code and
output checked against the `<!-- doctest: {...} -->` line above it.

The directive (JSON) says how to run it: `file` (the name it is saved as), `args` (paths relative to
tests/fixtures), `copy` ({destination: source relative to the repository}), `env` and
`"lacework": true` (settings pointing at the Lacework emulator), `exit` (the expected exit code)
and `stdout` (strings the output must contain). A ```python block without a directive fails: an
example that is not run is an example that rots."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import FIXTURES
from test_gate import LW_VARS, emulator  # noqa: F401  (emulator is a fixture)

ROOT = FIXTURES.parents[1]
DOC = ROOT / "docs" / "python.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
DIRECTIVE = re.compile(r"^<!-- doctest: (\{.*\}) -->$")


def examples():
    """(line, code, directive or None) of every ```python block."""
    text = DOC.read_text()
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip().split("\n")[-1]
        directive = DIRECTIVE.match(before)
        line = text.count("\n", 0, m.start()) + 1
        found.append((line, m.group(1), json.loads(directive.group(1)) if directive else None))
    return found


def test_every_example_has_a_directive():
    blocks = examples()
    assert len(blocks) >= 2, "no ```python examples found"
    for line, _, directive in blocks:
        assert directive, f"docs/python.md:{line}: a ```python block without <!-- doctest: {{...}} -->"


@pytest.mark.parametrize(
    "line,code,directive",
    [b for b in examples() if b[2]],
    ids=lambda v: str(v) if isinstance(v, int) else "",
)
def test_example_runs_as_written(line, code, directive, tmp_path, request):
    for dest, src in directive.get("copy", {}).items():
        (tmp_path / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / src, tmp_path / dest)
    (tmp_path / directive["file"]).write_text(code)
    env = {k: v for k, v in os.environ.items() if k not in LW_VARS}
    env["HOME"] = str(tmp_path)
    if directive.get("lacework"):
        emu = request.getfixturevalue("emulator")
        env.update(LW_ACCOUNT=emu["url"], LW_API_KEY=emu["key_id"], LW_API_SECRET=emu["secret"])
    env.update(directive.get("env", {}))
    args = [str(FIXTURES / a) for a in directive.get("args", [])]
    run = subprocess.run(
        [sys.executable, directive["file"], *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    shown = f"docs/python.md:{line}: exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == directive["exit"], shown
    for s in directive.get("stdout", []):
        assert s in run.stdout, f"missing {s!r}\n{shown}"

"""The README's "first ten minutes", run as written: its files are written and its shell blocks
run, in order, in an empty folder, against a private Redis. A comment that shows output
(``# result: ...``, ``# {...}``, ``# Error: ...``) must be what the command printed.

The one liberty taken: the session's private Redis and a free port are passed in as
``REDIS_URL`` and ``PORT``, which the README's own lines read (``${REDIS_URL:-...}``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobrunner.dev.redis_server import free_port

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "### The first ten minutes"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
SHOWN_OUTPUT = re.compile(r"#\s+((?:result: |Error: |\{).*)$")


def quickstart_blocks() -> list[tuple[str, str]]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start)
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text[start:end])]


def test_the_quickstart_has_files_shell_and_shown_output() -> None:
    blocks = quickstart_blocks()
    files = [body.splitlines()[0] for kind, body in blocks if kind == "python"]
    assert files == ["# myapp/jobs.py", "# enqueue_sync.py", "# enqueue_async.py"]
    assert sum(kind == "bash" for kind, _ in blocks) == 3
    shown = [m.group(1) for _, body in blocks for line in body.splitlines()
             if (m := SHOWN_OUTPUT.search(line))]  # fmt: skip
    assert len(shown) >= 4, shown


def test_the_readme_quickstart_runs_as_written(redis_url: str, tmp_path: Path) -> None:
    script = ["set -euo pipefail"]
    expected = []
    for kind, body in quickstart_blocks():
        if kind == "python":
            name = body.splitlines()[0].removeprefix("# ").strip()
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(body)
        elif kind == "bash":
            script.append(body)
            for line in body.splitlines():
                if m := SHOWN_OUTPUT.search(line):
                    expected.append(m.group(1).strip())
    (tmp_path / "quickstart.sh").write_text("\n".join(script) + "\n")
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")}
    env.pop("PYTHONPATH", None)  # nothing but the folder itself and the installed package
    env.update(REDIS_URL=redis_url, PORT=str(free_port()), PATH=f"{bin_dir}:{env['PATH']}")
    log = tmp_path / "transcript.txt"  # a file: the background worker and API keep a pipe open
    with log.open("w") as out:
        run = subprocess.Popen(["bash", "quickstart.sh"], cwd=tmp_path, env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            status = run.wait(timeout=150)
        finally:
            stop_group(run.pid)  # the worker and the API it left running in the background
    output = log.read_text()
    print(output)  # the transcript, for whoever reads the test log
    assert status == 0, output
    for shown in expected:
        assert shown in output, f"the README shows {shown!r}; the run printed:\n{output}"
    assert "Traceback" not in output, output
    assert '"state":"done"' in output.replace(" ", ""), output
    assert '"max_retries":5' in output.replace(" ", ""), output  # the handler's, kept at enqueue


def stop_group(group: int) -> None:
    """SIGTERM the process group (a clean stop for the worker and API), then SIGKILL stragglers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)  # polling the group's exit, with a deadline

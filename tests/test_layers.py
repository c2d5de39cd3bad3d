"""The package's layers, checked by import-linter: core <- api <- dev <- lab, never the other way.

The contracts are in pyproject.toml (``[tool.importlinter]``); ``make lint`` runs them too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPPER = {"api", "archive", "dev", "grpc", "lab"}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def test_the_package_keeps_its_layers() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_every_core_module_is_under_the_core_contract() -> None:
    """A new top-level module is core unless it sits in api/, dev/ or lab/: it must be listed."""
    listed = {name.removeprefix("jobrunner.") for name in contracts()["core"]["source_modules"]}  # type: ignore[attr-defined]
    present = {
        path.stem if path.suffix == ".py" else path.name
        for path in (ROOT / "jobrunner").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert present - UPPER == listed


def test_a_core_module_that_imports_the_lab_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "jobrunner", tmp_path / "jobrunner",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    keys = tmp_path / "jobrunner" / "keys.py"
    keys.write_text(keys.read_text() + "\nimport jobrunner.lab.naive  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1
    assert "The core imports nothing from the API, the dev tooling or the lab BROKEN" in done.stdout
    assert "jobrunner.keys -> jobrunner.lab.naive" in done.stdout

"""Notebooks as code: ``notebooks/src/NN-name.py`` (jupytext percent format) are the sources;
``notebooks/NN-name.ipynb`` are built from them and, for the committed copies, executed.

    python -m jobrunner.lab.build              # rebuild every .ipynb from its source (no outputs)
    python -m jobrunner.lab.build --execute    # rebuild, then run each with its full parameters
    python -m jobrunner.lab.build --execute --only 04

A source's cell tagged ``parameters`` holds the defaults (the full experiment); papermill
injects the small ones CI uses after it (``tests/test_notebooks.py``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def _module(name: str) -> Any:
    """jupytext, nbformat and papermill ship no type information: use them untyped."""
    return importlib.import_module(name)


def sources(root: Path = NOTEBOOKS) -> list[Path]:
    return sorted((root / "src").glob("[0-9][0-9]-*.py"))


def notebook_for(source: Path) -> Path:
    return source.parent.parent / f"{source.stem}.ipynb"


def build(source: Path) -> Path:
    """Write the source's notebook, without outputs."""
    jupytext, nbformat = _module("jupytext"), _module("nbformat")
    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    out = notebook_for(source)
    nbformat.write(nb, out)
    return out


def execute(
    notebook: Path,
    output: Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> Any:
    """Run ``notebook`` top to bottom with papermill (in place unless ``output``)."""
    papermill = _module("papermill")
    return papermill.execute_notebook(
        str(notebook),
        str(output or notebook),
        parameters=dict(parameters or {}),
        cwd=str(cwd or notebook.parent),
        kernel_name=KERNEL["name"],
        progress_bar=False,
        log_output=False,
    )


def code_cells(notebook: Any) -> list[str]:
    """The sources of a notebook's code cells, papermill's injected cell left out."""
    return [
        "".join(cell.source)
        for cell in notebook.cells
        if cell.cell_type == "code" and "injected-parameters" not in cell.metadata.get("tags", [])
    ]


def in_sync(source: Path) -> bool:
    """Does the committed notebook carry exactly its source's cells?"""
    jupytext, nbformat = _module("jupytext"), _module("nbformat")
    built = jupytext.read(source)
    committed = nbformat.read(notebook_for(source), as_version=4)
    return code_cells(built) == code_cells(committed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--execute", action="store_true", help="run each with full parameters")
    parser.add_argument("--only", help="a number or name fragment, e.g. 04")
    args = parser.parse_args(argv)
    chosen = [s for s in sources() if not args.only or args.only in s.stem]
    if not chosen:
        print(f"no notebook source matches {args.only!r}", file=sys.stderr)
        return 2
    for source in chosen:
        notebook = build(source)
        print(f"built {notebook.name}", flush=True)
        if args.execute:
            started = time.monotonic()
            execute(notebook)
            print(f"  executed in {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

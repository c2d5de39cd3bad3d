"""Two profiles of the same work, before and after a change, read side by side and as one
differential flamegraph.

The input is py-spy's ``--format raw`` output (collapsed stacks: ``root;caller;callee count``
per line, the format Brendan Gregg's flamegraph tools read). A frame's *inclusive* share is the
fraction of samples whose stack holds it (it and everything it calls); its *self* share counts
only the samples where it is the innermost frame. The differential flamegraph draws the "after"
profile and colours each frame by how its inclusive share moved since "before": red grew, blue
shrank, white stayed. Width is samples, never time order: x is sorted by name.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

Stacks = Counter[tuple[str, ...]]


def parse_collapsed(text: str) -> Stacks:
    """``a;b;c 12`` lines -> {("a", "b", "c"): 12}; blank or malformed lines are skipped."""
    stacks: Stacks = Counter()
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def read_collapsed(path: str | Path) -> Stacks:
    return parse_collapsed(Path(path).read_text())


def function_of(frame: str) -> str:
    """``send (jobrunner/pipelined.py:201)`` -> ``send (jobrunner/pipelined.py)``: one name
    per function, whatever line it was on."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def shares(stacks: Stacks) -> Any:
    """Per function: inclusive and self share of the samples."""
    import pandas as pd

    total = sum(stacks.values()) or 1
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    for stack, count in stacks.items():
        functions = [function_of(f) for f in stack]
        for name in set(functions):
            inclusive[name] += count
        if functions:
            self_[functions[-1]] += count
    frame = pd.DataFrame({"inclusive": pd.Series(inclusive) / total,
                          "self": pd.Series(self_) / total}).fillna(0.0)  # fmt: skip
    return frame.sort_values("inclusive", ascending=False)


def compare(before: Stacks, after: Stacks, n: int = 15) -> Any:
    """The ``n`` functions whose inclusive share moved most, before and after."""
    a, b = shares(before)["inclusive"], shares(after)["inclusive"]
    import pandas as pd

    table = pd.DataFrame({"before": a, "after": b}).fillna(0.0)
    table["change"] = table["after"] - table["before"]
    return table.reindex(table["change"].abs().sort_values(ascending=False).index).head(n)


def per_job(stacks: Stacks, jobs: int) -> Any:
    """Inclusive samples per 1,000 jobs, per function: with a fixed sampling rate, a cost per
    job that two runs of different speeds can be compared on (shares cannot: a faster run
    spreads the same samples over more jobs)."""
    total = sum(stacks.values())
    return shares(stacks)["inclusive"] * total / jobs * 1000


def only(stacks: Stacks, function: str) -> Stacks:
    """The stacks that pass through ``function`` (by ``function_of`` name), cut to start at it:
    one thread's or one task's part of a profile."""
    out: Stacks = Counter()
    for stack, count in stacks.items():
        names = [function_of(f) for f in stack]
        if function in names:
            out[stack[names.index(function) :]] += count
    return out


def _tree(stacks: Stacks) -> dict[str, Any]:
    """Nested {frame: {"n": samples, "kids": {...}}}, frames by function."""
    root: dict[str, Any] = {"n": 0, "kids": {}}
    for stack, count in stacks.items():
        node = root
        node["n"] += count
        for frame in stack:
            node = node["kids"].setdefault(function_of(frame), {"n": 0, "kids": {}})
            node["n"] += count
    return root


def _path_shares(stacks: Stacks) -> dict[tuple[str, ...], float]:
    """Share of samples under each path of frames (by function)."""
    total = sum(stacks.values()) or 1
    out: Counter[tuple[str, ...]] = Counter()
    for stack, count in stacks.items():
        path: tuple[str, ...] = ()
        for frame in stack:
            path = (*path, function_of(frame))
            out[path] += count
    return {k: v / total for k, v in out.items()}


def _colour(name: str) -> tuple[float, float, float]:
    """A warm colour fixed by the function's name: the same function looks alike in two
    flamegraphs drawn apart."""
    h = hashlib.md5(name.encode(), usedforsecurity=False).digest()  # a colour, nothing secret
    return (0.85 + h[0] / 255 * 0.15, 0.35 + h[1] / 255 * 0.5, 0.1 + h[2] / 255 * 0.2)


def icicle(
    ax: Any, stacks: Stacks, title: str = "", min_share: float = 0.005,
    colour_of: Any = None, max_depth: int = 40, scale: float = 1.0, label_min: float = 0.06,
) -> dict[str, tuple[float, int, float]]:  # fmt: skip
    """Draw ``stacks`` as a flamegraph on ``ax`` (root at the bottom; a frame's width is its
    share of the samples, times ``scale``: below 1 to draw a profile that cost less per job
    narrower than the one it is compared with; frames narrower than ``min_share`` are left
    out, those narrower than ``label_min`` unnamed). Returns each function's widest box as
    (x, depth, width), for annotations."""
    from matplotlib.patches import Rectangle

    tree, total = _tree(stacks), (sum(stacks.values()) or 1) / scale
    deepest = 0
    boxes: dict[str, tuple[float, int, float]] = {}

    def draw(node: dict[str, Any], path: tuple[str, ...], x: float, depth: int) -> None:
        nonlocal deepest
        for name in sorted(node["kids"]):  # x is sorted by name: it is not time
            kid = node["kids"][name]
            width = kid["n"] / total
            if width >= min_share and depth < max_depth:
                here = (*path, name)
                colour = colour_of(here) if colour_of else _colour(name)
                ax.add_patch(Rectangle((x, depth), width, 0.95, facecolor=colour,
                                       edgecolor="white", linewidth=0.3))  # fmt: skip
                label = name.split(" (")[0]
                if width > label_min:
                    ax.text(x + 0.003, depth + 0.45, label[: max(4, int(width * 110))],
                            fontsize=6, va="center", clip_on=True)  # fmt: skip
                if width > boxes.get(name, (0.0, 0, 0.0))[2]:
                    boxes[name] = (x, depth, width)
                deepest = max(deepest, depth + 1)
                draw(kid, here, x, depth + 1)
            x += width

    draw(tree, (), 0.0, 0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(deepest, 1))
    ax.set_yticks([])
    ax.set_xlabel("share of the samples" if scale == 1.0 else
                  "samples a job, as a share of the profile it is compared with")  # fmt: skip
    ax.text(1.0, -0.18, "x is sorted by name, not time", transform=ax.transAxes, ha="right",
            fontsize=7, color="grey")  # fmt: skip
    ax.set_title(title, fontsize=9)
    return boxes


def differential(
    ax: Any, before: Stacks, after: Stacks, title: str = "", scale: float = 0.1,
    width: float = 1.0,
) -> None:  # fmt: skip
    """``after`` drawn as a flamegraph, each frame red where its cost grew since ``before``
    and blue where it shrank (full colour at ``scale``: 0.1 is a tenth of the before profile).
    ``width``: after's cost per job relative to before's (1: compare shares)."""
    old, new = _path_shares(before), _path_shares(after)

    def colour_of(path: tuple[str, ...]) -> tuple[float, float, float]:
        moved = new.get(path, 0.0) * width - old.get(path, 0.0)
        change = max(-1.0, min(1.0, moved / scale))
        if change >= 0:
            return (1.0, 1.0 - change * 0.8, 1.0 - change * 0.8)
        return (1.0 + change * 0.8, 1.0 + change * 0.8, 1.0)

    icicle(ax, after, title, colour_of=colour_of, scale=width)


def crop_figure(
    before: Stacks, after: Stacks, function: str, notes: dict[str, str], title: str,
    width: float = 1.0,
) -> Any:  # fmt: skip
    """One function's part of both profiles (``only``), side by side and drawn to the same
    scale (``width``: after's cost per job relative to before's), every box named, and each
    function in ``notes`` pointed at with its note on whichever side it is drawn."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.5))
    left, right = fig.subplots(1, 2)
    part_before, part_after = only(before, function), only(after, function)
    scale = width * sum(part_after.values()) / max(1, sum(after.values()))
    scale /= max(1e-9, sum(part_before.values()) / max(1, sum(before.values())))
    for ax, part, side, s in ((left, part_before, "before", 1.0), (right, part_after, "after",
                                                                    scale)):  # fmt: skip
        boxes = icicle(ax, part, f"{side}: {function.split(' (')[0]} and what it calls",
                       min_share=0.01, scale=s, label_min=0.03)  # fmt: skip
        for name, note in notes.items():
            if name in boxes:
                x, depth, w = boxes[name]
                ax.annotate(note, xy=(x + w / 2, depth + 0.5), xytext=(0.45, 0.75),
                            textcoords="axes fraction", fontsize=8, color="darkred",
                            bbox={"facecolor": "white", "edgecolor": "darkred", "pad": 3},
                            arrowprops={"arrowstyle": "->", "color": "darkred"})  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def pair_figure(
    before: Stacks, after: Stacks, labels: tuple[str, str], title: str,
    jobs: tuple[int, int] | None = None,
) -> Any:  # fmt: skip
    """Before, after and the differential flamegraph, stacked, in one figure. With ``jobs``
    (done during each profile's window), the after profile is drawn as wide as its cost per
    job relative to before's, and the differential colours costs per job, not shares."""
    from matplotlib.figure import Figure

    width = 1.0
    if jobs is not None:
        width = (sum(after.values()) / jobs[1]) / (sum(before.values()) / jobs[0])
    per = " a job" if jobs is not None else ""
    fig = Figure(figsize=(12, 13))
    top, middle, bottom = fig.subplots(3, 1)
    icicle(top, before, f"before: {labels[0]} ({sum(before.values()):,} samples)")
    icicle(middle, after, f"after: {labels[1]} ({sum(after.values()):,} samples; "
                          f"{width:.2f}x the samples{per} before)", scale=width)  # fmt: skip
    differential(bottom, before, after,
                 f"differential: the after profile, red where a frame cost more{per} than "
                 f"before, blue where it cost less", width=width)  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig

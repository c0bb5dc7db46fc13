"""What the user hears: `%%speak` in a real JupyterLab and Chromium, timed from the page.

    .venv/bin/python bench/browser_bench.py [--json] [--long-chars 2800] [--skip-run-all]

Every Web Audio source the player starts is recorded in the page (tests/_lab.py's
AUDIO_PROBE): when it plays on the context's clock and the page's, and how long its buffer
is. Per text (a short sentence, the sample paragraph of `kokoro-nb bench`, a long text of
about three minutes of audio) it reports the first sound after the cell was run, the
underruns (silence between one source's end and the next one's start: the player schedules
pieces back to back and planned pauses are inside the samples, so any such gap is an
underrun) and the RTF (synthesis wall time over audio length), once with the engine warm
(``--warm-s`` after ``%load_ext``) and once straight after ``%load_ext``. Then it runs
notebooks/quickstart.ipynb (a copy) with JupyterLab's Run All and checks that every speaking
cell is heard whole, in cell order.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _lab import CHROMIUM, Lab, LabPage, launch  # noqa: E402

from kokoro_nb._cli import SAMPLE_PARAGRAPH  # noqa: E402

SHORT = "Hello there, this is a short sentence."
LONG_SOURCE = ROOT / "bench" / "pride_and_prejudice_ch1.txt"
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
GAP_S = 0.0005  # a join further apart than this is heard as silence (a frame is 0.04 ms)
OVERLAP_MS = 50  # utterances compare on the page's clock, whose mapping moves by tens of ms
ACTIVE = "['buffering', 'blocked', 'queued', 'playing']"


@dataclass
class Heard:
    """One started source as the listener gets it: its start on the context's clock (s, for
    joins: exact) and the page's (ms, for first sound: mapped), and its length (s)."""

    start_s: float
    start_ms: float
    length_s: float
    late_s: float  # started this long after the time it was scheduled for (0: on time)

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s

    @property
    def end_ms(self) -> float:
        return self.start_ms + 1000 * self.length_s


@dataclass
class Result:
    """One utterance: when it was first heard, its underruns, and how fast it was made."""

    name: str
    chars: int
    state: str = ""
    audio_s: float = 0.0
    heard_s: float = 0.0
    sources: int = 0
    first_sound_s: float | None = None
    underruns: int = 0
    underrun_s: float = 0.0
    rtf: float | None = None
    synth_s: float | None = None
    engine_ttfa_s: float | None = None
    preroll_s: float | None = None
    start_ms: float | None = None  # page clock: first sound
    end_ms: float | None = None  # page clock: last sound ends
    notes: list[str] = field(default_factory=list)


def long_text(chars: int) -> str:
    """The opening paragraphs of Pride and Prejudice, as many as fit in about `chars`."""
    paragraphs = [" ".join(p.split()) for p in LONG_SOURCE.read_text().split("\n\n")]
    kept: list[str] = []
    for paragraph in filter(None, paragraphs):
        if kept and sum(len(k) + 2 for k in kept) + len(paragraph) > chars:
            break
        kept.append(paragraph)
    return "\n\n".join(kept)


def heard(entry: dict[str, Any]) -> Heard:
    """Where a probe entry falls on the page's clock, as the listener hears it."""
    begin = max(float(entry["when"]), float(entry["ctxTime"]))  # a start in the past is "now"
    end = begin + float(entry["buffer"]) - float(entry["offset"])
    if entry.get("stopAt") is not None:
        end = min(end, max(begin, float(entry["stopAt"])))
    if entry.get("outPerf"):  # the output timestamp: what is leaving the speakers when
        base_ctx, base_ms = float(entry["outCtx"]), float(entry["outPerf"])
    else:
        base_ctx, base_ms = float(entry["ctxTime"]), float(entry["perf"])
    return Heard(
        begin,
        base_ms + 1000 * (begin - base_ctx),
        end - begin,
        max(0.0, float(entry["ctxTime"]) - float(entry["when"])),
    )


def underruns(pieces: list[Heard]) -> list[float]:
    """The silences (s) between consecutive sources of one utterance, on the context's clock
    (the page-clock mapping moves by tens of ms as the output settles)."""
    ordered = sorted(pieces, key=lambda h: h.start_s)
    gaps = [b.start_s - a.end_s for a, b in itertools.pairwise(ordered)]
    return [g for g in gaps if g > GAP_S]


def sources_of(snapshot: dict[str, Any], log: Iterable[dict[str, Any]]) -> list[Heard]:
    """The probe entries this player started (its schedule holds the same `when` values)."""
    whens = {float(s["when"]) for s in snapshot["scheduled"]}
    return [heard(e) for e in log if float(e["when"]) in whens]


def measure(name: str, chars: int, ran_ms: float, snap: dict[str, Any], log: list[Any]) -> Result:
    """The record of one player's utterance, timed from `ran_ms` (page clock)."""
    pieces = sources_of(snap, log)
    final = snap.get("final") or {}
    metrics = final.get("metrics") or {}
    result = Result(name, chars, state=str(snap["state"]), sources=len(pieces))
    result.audio_s = round(int(snap["samples"]) / int(snap["rate"] or 24000), 2)
    if snap.get("timed_out"):
        result.notes.append("timed out waiting for it to finish")
    if final.get("kind") == "abort":
        result.notes.append(f"aborted: {final.get('reason')}")
    if pieces:
        gaps = underruns(pieces)
        result.heard_s = round(sum(p.length_s for p in pieces), 2)
        result.start_ms = min(p.start_ms for p in pieces)
        result.end_ms = max(p.end_ms for p in pieces)
        result.first_sound_s = round((result.start_ms - ran_ms) / 1000, 3)
        result.underruns, result.underrun_s = len(gaps), round(sum(gaps), 3)
        late = [p.late_s for p in pieces if p.late_s > 0]
        if late:
            result.notes.append(f"{len(late)} sources started after their time")
    for key, attr in (("rtf", "rtf"), ("total_s", "synth_s"), ("ttfa_s", "engine_ttfa_s")):
        if isinstance(metrics.get(key), (int, float)):
            setattr(result, attr, round(float(metrics[key]), 3))
    if metrics.get("cached"):
        result.notes.append("cache hit")
    if isinstance(snap.get("preroll"), (int, float)):  # the player's own record
        result.preroll_s = round(float(snap["preroll"]), 3)
    if snap.get("rebuffers"):
        result.notes.append(f"re-buffered {snap['rebuffers']}x")
    return result


def wait_played(page: LabPage, player: str, timeout: float) -> dict[str, Any]:
    """The player's snapshot once its stream is complete and it is no longer playing (or
    when `timeout` ran out: its state then says where it stuck)."""
    try:
        page.wait_for(
            f"(s => s.complete && !{ACTIVE}.includes(s.state))"
            f"(window.__kokoroPlayers[{json.dumps(player)}].snapshot())",
            timeout=timeout,
            what=f"player {player} to finish",
        )
    except TimeoutError:
        return {**page.player(player), "timed_out": True}
    return dict(page.player(player))


def speak_cell(text: str) -> str:
    return f"%%speak\n{text}"


def condition(lab: Lab, browser: Any, warm_s: float, texts: list[tuple[str, str]]) -> list[Result]:
    """A fresh kernel: load the extension, wait `warm_s`, speak each text and let it play out."""
    name = lab.write_notebook(
        f"speak_{int(warm_s)}.ipynb",
        ["%load_ext kokoro_nb", *(speak_cell(text) for _, text in texts)],
    )
    page = LabPage(browser.new_page(viewport={"width": 1100, "height": 900}), lab, True)
    try:
        page.open(name)
        page.run_cell(0)
        time.sleep(warm_s)
        results = []
        for index, (label, text) in enumerate(texts, start=1):
            page.run_cell(index)
            player = page.player_of(index)
            snap = wait_played(page, player, timeout=60 + 4 * len(text) * 0.07)
            results.append(measure(label, len(text), page.ran_at(index), snap, page.audio_log()))
        return results
    finally:
        page.page.close()
        lab.shutdown_kernels()


def speaking_cells(cells: list[dict[str, Any]]) -> list[int]:
    """Code cells that speak: %%speak / %speak, or kokoro_nb.say."""
    found = []
    for index, cell in enumerate(cells):
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] == "code" and re.search(r"^%%?speak\b|kokoro_nb\.say\(", source, re.M):
            found.append(index)
    return found


def run_all(lab: Lab, browser: Any, timeout: float) -> dict[str, Any]:
    """Run All on a copy of the quickstart; each speaking cell's record, and the order check."""
    name = lab.add_notebook(QUICKSTART, "quickstart_run_all.ipynb")
    cells = json.loads((lab.root / name).read_text())["cells"]
    page = LabPage(browser.new_page(viewport={"width": 1100, "height": 900}), lab, True)
    try:
        page.open(name)
        started = page.run_all()
        problems = []
        try:
            page.wait_for(
                "__panel().content.widgets.every(w => w.model.type !== 'code'"
                " || w.model.executionCount) && __panel().sessionContext.session.kernel.status"
                " === 'idle'",
                timeout=timeout,
                what="Run All to execute every cell",
            )
        except TimeoutError:
            problems.append(f"Run All had not run every cell after {timeout:g} s")
        results = []
        deadline = time.monotonic() + timeout
        for index in speaking_cells(cells):
            source = "".join(cells[index]["source"])
            try:
                player = page.player_of(index, timeout=30)
            except TimeoutError:
                results.append(Result(f"cell {index}", len(source), state="no player"))
                continue
            snap = wait_played(page, player, timeout=max(10.0, deadline - time.monotonic()))
            result = measure(f"cell {index}", len(source), started, snap, page.audio_log())
            results.append(result)
        checked = order_check(results)
        checked["order_problems"] = problems + checked["order_problems"]
        return {"cells": [asdict(r) for r in results], **checked}
    finally:
        page.page.close()
        lab.shutdown_kernels()


def order_check(results: list[Result]) -> dict[str, Any]:
    """Was each utterance heard whole, after the one before it ended, in cell order?"""
    whole = [r.name for r in results if r.audio_s and abs(r.heard_s - r.audio_s) <= 0.05]
    overlaps = []
    heard_in_order = [r for r in results if r.start_ms is not None]
    for a, b in itertools.pairwise(heard_in_order):
        assert a.start_ms is not None and b.start_ms is not None and a.end_ms is not None
        if b.start_ms < a.start_ms:
            overlaps.append(f"{b.name} started before {a.name}")
        elif b.start_ms < a.end_ms - OVERLAP_MS:
            overlaps.append(
                f"{b.name} started {(a.end_ms - b.start_ms) / 1000:.2f} s before {a.name} ended"
            )
    return {
        "speaking_cells": len(results),
        "heard_whole": len(whole),
        "not_whole": [r.name for r in results if r.name not in whole],
        "in_order": not overlaps and len(heard_in_order) == len(results),
        "order_problems": overlaps,
        "underruns": sum(r.underruns for r in results),
        "underrun_s": round(sum(r.underrun_s for r in results), 3),
    }


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = found.group(1).strip() if found else ""
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


COLUMNS = (
    ("text", "name"),
    ("chars", "chars"),
    ("audio s", "audio_s"),
    ("first sound s", "first_sound_s"),
    ("pre-roll s", "preroll_s"),
    ("underruns", "underruns"),
    ("underrun s", "underrun_s"),
    ("RTF", "rtf"),
    ("engine first audio s", "engine_ttfa_s"),
    ("state", "state"),
    ("notes", "notes"),
)


def table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, list):
            return "; ".join(str(v) for v in value)
        return "" if value is None else str(value)

    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell(row.get(key)) for _, key in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def report(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average']}"
        f" (at the end: {doc['load_average_end']}); {m['system']}, Python {m['python']}",
        "",
    ]
    for label, rows in doc["conditions"].items():
        out += [f"### {label}", "", table(rows), ""]
    if doc.get("run_all"):
        run = doc["run_all"]
        out += [
            "### Run All of notebooks/quickstart.ipynb (first sound from Run All; a queued"
            " cell's pre-roll includes its wait for the cells before it)",
            "",
            table(run["cells"]),
            "",
            f"Speaking cells {run['speaking_cells']}, heard whole {run['heard_whole']}"
            f" (not whole: {', '.join(run['not_whole']) or 'none'}); in cell order without"
            f" overlap: {'yes' if run['in_order'] else 'no'}"
            + (f" ({'; '.join(run['order_problems'])})" if run["order_problems"] else "")
            + f"; underruns {run['underruns']} ({run['underrun_s']} s).",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--long-chars", type=int, default=2800, help="length of the long text")
    parser.add_argument("--warm-s", type=float, default=12.0, help="wait after %%load_ext")
    parser.add_argument("--skip-run-all", action="store_true", help="skip the quickstart run")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: run `make browser`")
    from playwright.sync_api import sync_playwright

    texts = [
        ("short", SHORT),
        ("paragraph", SAMPLE_PARAGRAPH),
        ("long", long_text(args.long_chars)),
    ]
    doc: dict[str, Any] = {"machine": machine(), "conditions": {}}
    with tempfile.TemporaryDirectory() as tmp, Lab(Path(tmp)) as lab, sync_playwright() as pw:
        browser = launch(pw, autoplay=True)
        try:
            for label, wait in (
                (f"warm ({args.warm_s:g} s after load_ext)", args.warm_s),
                ("straight after load_ext (pool warming)", 0.0),
            ):
                rows = condition(lab, browser, wait, texts)
                doc["conditions"][label] = [asdict(r) for r in rows]
            if not args.skip_run_all:
                doc["run_all"] = run_all(lab, browser, timeout=900)
        except Exception:
            print(f"JupyterLab's log:\n{lab.log_text()}", file=sys.stderr)
            raise
        finally:
            browser.close()
    doc["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(doc, indent=2) if args.json else report(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

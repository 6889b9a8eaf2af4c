"""Failure drills: every test in ``tests/drills`` (kill and resume, Ctrl-C, disk trouble, bad data, hostile recipes).

Runs ``pytest tests/drills -m "drill or not drill"`` (``--quick``: only the fast ones, ``-m "not drill"``) with a
JUnit report, and collects the facts the drills record through their ``drill_record`` fixture
(``$YOLOCUSTOM_DRILL_REPORT``). A failing drill is a result, not an error of the benchmark: it shows in the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, REPO, bench_env, main, shell_join, table, work_dir  # noqa: E402

NAME = "drills"
TITLE = "Failure drills"
FILES = {"test_kill_resume": "Kill and resume (SIGKILL at seeded random points, then `--resume`)",
         "test_interrupt": "SIGINT (Ctrl-C) and restarts", "test_disk_trouble": "Disk trouble",
         "test_bad_data": "Bad data", "test_hostile_recipes": "Hostile recipes"}  # fmt: skip
NOTES = """\
Decisions the drills pin down:

- **Kill before the first checkpoint**: `--resume` fails cleanly (exit 1) in both forms, `--resume LAST_PT` saying \
the checkpoint was not found and `--resume RECIPE` naming the folder it searched; the drill then restarts from \
scratch and requires every epoch exactly once. A kill in the end-of-epoch save window (the epoch's results.csv row \
written, last.pt not yet) leaves the previous epoch's checkpoint, and the extra row is dropped on resume.
- **best.pt follows the chosen metric**: its stored fitness is its F1, the maximum of results.csv's F1 column, not \
the default fitness (mAP50-95).
- **Checkpoints**: last.pt and best.pt are staged under a temporary name, then `os.replace`d, so a kill or a full \
disk never leaves them truncated. Ultralytics still writes `epochN.pt` (`save_period`) in place: the kill drill \
allows a truncated one only for the epoch being saved at the kill, and reports it.
- A read-only folder through permission bits is skipped when the drills run as root (root ignores them); a run \
folder below a regular file exercises the same check for every user. The DDP unfreeze path is covered by \
`tests/test_ddp_unfreeze.py` (real gloo processes), not drilled here.
"""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the drills with a JUnit report; return each test's outcome and the recorded facts."""
    (work := work_dir(args, NAME)).mkdir(parents=True, exist_ok=True)
    xml, facts = work / "junit.xml", work / "facts.json"
    facts.unlink(missing_ok=True)
    marker = "not drill" if args.quick else "drill or not drill"
    cmd = [PYTHON, "-m", "pytest", "-q", "tests/drills", "-m", marker, "-p", "no:cacheprovider", f"--junitxml={xml}"]
    returncode = subprocess.run(cmd, cwd=REPO, env=bench_env(YOLOCUSTOM_DRILL_REPORT=str(facts))).returncode
    cases = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            if (node := case.find(tag)) is not None:
                outcome = "xfail" if tag == "skipped" and node.get("type") == "pytest.xfail" else tag
                detail = node.get("message", "").split("\n")[0][:160]
        cases.append({"file": case.get("classname", "").split(".")[-1], "name": case.get("name", ""),
                      "outcome": outcome, "detail": detail, "seconds": float(case.get("time", 0))})  # fmt: skip
    return {"pytest_command": shell_join(cmd), "returncode": returncode, "cases": cases,
            "facts": json.loads(facts.read_text()) if facts.exists() else []}  # fmt: skip


def _cell(value: Any) -> str:
    if isinstance(value, list):
        value = ", ".join(map(str, value)) or "none"
    return "none" if value is None else str(value).replace("|", "/").replace("\n", " ")


def render(result: dict[str, Any]) -> str:
    """The section: outcome per test, then the recorded facts, one table per drill, then the notes."""
    cases = result["cases"]
    n = [c["outcome"] for c in cases].count
    rows = [[FILES.get(c["file"], c["file"]), f"`{c['name']}`",
             c["outcome"] + (f": {_cell(c['detail'])}" if c["detail"] and c["outcome"] != "passed" else ""),
             f"{c['seconds']:.1f}"] for c in cases]  # fmt: skip
    text = (
        f"## {TITLE}\n\nRun with `{result['pytest_command']}`: {len(cases)} tests, {n('passed')} passed, "
        f"{n('failure') + n('error')} failed, {n('skipped')} skipped, {n('xfail')} expected failures; "
        f"{sum(c['seconds'] for c in cases):.0f} s in all. Tests marked `@pytest.mark.drill` run in `make drills`; "
        "the others also run in `make test`.\n\n" + table("drill | test | outcome | time (s)", rows, "lllr")
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for fact in result["facts"]:
        groups.setdefault(fact["test"].split("::")[-1].split("[")[0], []).append(fact)
    for test, facts in groups.items():
        keys = list(dict.fromkeys(k for f in facts for k in f if k != "test"))
        cells = [[_cell(f.get(k)) for k in keys] for f in facts]
        text += f"\n\nMeasured by `{test}`:\n\n" + table([k.replace("_", " ") for k in keys], cells, "l" * len(keys))
    return text + "\n\n" + NOTES


if __name__ == "__main__":
    raise SystemExit(main(sys.modules[__name__]))

"""What a contract run prints (a summary table, the failures in full, a verdict) and the
JUnit XML it writes (one ``<testcase>`` per check, named by its id; no colour codes)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

from .harness import CheckResult

_WIDTH = 100
# XML 1.0 forbids most control characters; ANSI escapes start with one (\x1b).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """Text safe for XML and plain terminals: no ANSI sequences, no control characters."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


def format_table(results: Iterable[CheckResult]) -> str:
    rows = [(r.id, r.level, r.outcome, r.reason) for r in results]
    head = ("ID", "LEVEL", "RESULT", "REASON")
    w_id = max([len(head[0])] + [len(r[0]) for r in rows])
    w_level = max([len(head[1])] + [len(r[1]) for r in rows])
    lines = [f"{head[0]:<{w_id}}  {head[1]:<{w_level}}  {head[2]:<6}  {head[3]}"]
    lines.append("-" * min(_WIDTH, len(lines[0]) + 40))
    room = max(40, _WIDTH - w_id - w_level - 14)
    for cid, level, outcome, reason in rows:
        reason = clean(reason)
        if len(reason) > room:
            reason = reason[:room - 1] + "…"
        lines.append(f"{cid:<{w_id}}  {level:<{w_level}}  {outcome:<6}  {reason}")
    return "\n".join(lines)


def format_failures(results: Iterable[CheckResult]) -> str:
    failed = [r for r in results if r.outcome == "FAIL"]
    if not failed:
        return ""
    blocks = []
    for r in failed:
        tag = "" if r.counted else "  [does not fail the run at this --level]"
        blocks.append(clean(r.explanation()) + tag)
    return "\n\n".join(blocks)


def verdict(results: list[CheckResult], bar: str, seconds: float) -> tuple[int, str]:
    """(exit code, one-paragraph verdict) at ``--level bar``."""
    counted = [r for r in results if r.counted]
    other_fail = [r for r in results if r.outcome == "FAIL" and not r.counted]
    passed = sum(r.outcome == "PASS" for r in results)
    skipped = [r for r in results if r.outcome == "SKIP"]
    tally = (f"{passed} passed, {len(counted) + len(other_fail)} failed, {len(skipped)} skipped "
             f"({len(results)} checks) in {seconds:.1f} s")
    lines = []
    if counted:
        lines.append(f"Result: FAIL — {len(counted)} check(s) that count at --level {bar} failed: "
                     f"{', '.join(r.id for r in counted)}.")
    else:
        lines.append(f"Result: PASS — every {'required' if bar == 'required' else 'required and recommended'} "
                     f"check that ran passed.")
    if other_fail:
        rec = [r.id for r in other_fail if r.level == "recommended"]
        rep = [r.id for r in other_fail if r.level == "reported"]
        if rec:
            lines.append(f"Recommended check(s) failed (reported; they fail the run with --level "
                         f"recommended): {', '.join(rec)}.")
        if rep:
            lines.append(f"Reported check(s) failed (information only): {', '.join(rep)}.")
    required_skipped = [r.id for r in skipped if r.level == "required"]
    if required_skipped:
        lines.append(f"Required check(s) skipped, so NOT verified: {', '.join(required_skipped)} "
                     f"(see their reasons).")
    lines.append(tally + ".")
    return (1 if counted else 0), "\n".join(lines)


def write_junit(path: str | Path, results: list[CheckResult], *, seconds: float,
                properties: dict[str, str] | None = None, suite: str = "clever-contract") -> None:
    """JUnit XML: one testcase per check (name = id, classname = contract.<AREA>); a failed
    check is a ``<failure>`` whose message is the full explanation (type = its level)."""
    failures = sum(r.outcome == "FAIL" for r in results)
    skipped = sum(r.outcome == "SKIP" for r in results)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)), failures=str(failures),
                      errors="0", skipped=str(skipped), time=f"{seconds:.3f}")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                       failures=str(failures), errors="0", skipped=str(skipped),
                       time=f"{seconds:.3f}")
    if properties:
        props = ET.SubElement(ts, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", name=key, value=clean(str(value)))
    for r in results:
        case = ET.SubElement(ts, "testcase", name=r.id, classname=f"contract.{r.id.split('-')[0]}",
                             time=f"{r.duration_s:.3f}")
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="level", value=r.level)
        ET.SubElement(props, "property", name="title", value=clean(r.title))
        ET.SubElement(props, "property", name="seed", value=clean(r.seed))
        if r.outcome == "FAIL":
            text = clean(r.explanation())
            el = ET.SubElement(case, "failure", message=text,
                               type=f"{r.level}{'' if r.counted else ' (not counted)'}")
            el.text = text
        elif r.outcome == "SKIP":
            ET.SubElement(case, "skipped", message=clean(r.reason))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = clean(r.reason)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))

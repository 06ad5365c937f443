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


# --- reports for people: HTML (CI artifact) and Markdown (PR comment) -------------------------

REPORT_FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}
EVIDENCE_CLIP = 3000          # characters of one evidence section shown in a report
_OUTCOME_WORD = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}


def report_format(path: str | Path) -> str | None:
    """``html`` or ``markdown`` by the file's extension; None when it is neither."""
    return REPORT_FORMATS.get(Path(path).suffix.lower())


def _clipped(text: str, limit: int = EVIDENCE_CLIP) -> str:
    text = clean(text)
    return text if len(text) <= limit else text[:limit] + f"\n… [{len(text) - limit} more characters]"


def _rule_of(r: CheckResult) -> str:
    from .checks import BY_ID  # the registry: imported late (it imports the checks)

    chk = BY_ID.get(r.id)
    return chk.rule if chk is not None else ""


def _status_line(r: CheckResult) -> str:
    if r.outcome == "FAIL" and not r.counted:
        return f"failed ({r.level}: does not fail the run at this --level)"
    return _OUTCOME_WORD.get(r.outcome, r.outcome.lower())


def render_html(results: list[CheckResult], *, verdict_text: str, meta: dict[str, str]) -> str:
    """One self-contained page: inline CSS, no scripts, no external assets, all text escaped."""
    from html import escape

    def e(text: str) -> str:
        return escape(clean(str(text)), quote=True)

    counts_by = {o: sum(r.outcome == o for r in results) for o in ("PASS", "FAIL", "SKIP")}
    rows, blocks = [], []
    for r in results:
        anchor = e(r.id.lower())
        rows.append(f'<tr class="{r.outcome.lower()}"><td><a href="#{anchor}">{e(r.id)}</a></td>'
                    f"<td>{e(r.level)}</td><td>{e(r.outcome)}</td><td>{e(r.reason)}</td></tr>")
        parts = [f'<section id="{anchor}" class="{r.outcome.lower()}">',
                 f"<h2>{e(r.id)} — {e(r.title)}</h2>",
                 f"<p class=\"verdict\"><b>{e(r.outcome)}</b> ({e(_status_line(r))}, "
                 f"{r.duration_s:.2f} s): {e(r.reason)}</p>"]
        rule = _rule_of(r)
        if rule:
            parts.append(f"<p><b>Passes when:</b> {e(rule)}</p>")
        for name, text in r.sections:
            if name == "Fix":
                parts.append(f'<div class="fix"><b>How to fix it:</b> {e(text)}</div>')
            else:
                parts.append(f"<h3>{e(name)}</h3><pre>{e(_clipped(text))}</pre>")
        if r.details and not r.sections and r.outcome != "PASS":
            parts.append(f"<pre>{e(_clipped(r.details))}</pre>")
        if r.seed:
            parts.append(f"<blockquote>Seed rule: {e(r.seed)}</blockquote>")
        parts.append("</section>")
        blocks.append("\n".join(parts))
    info = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in meta.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Clever contract report</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
tr.fail td:nth-child(3),section.fail .verdict b{{color:#b00020}}tr.pass td:nth-child(3),section.pass .verdict b{{color:#1b7f3b}}
tr.skip td:nth-child(3),section.skip .verdict b{{color:#8a6d00}}
section{{border-top:1px solid #ddd;margin-top:1.5em}}section.fail{{border-left:4px solid #b00020;padding-left:1em}}
pre{{background:#f6f6f6;padding:.6em;overflow:auto;white-space:pre-wrap;word-break:break-all}}
.fix{{background:#eef6ff;border:1px solid #9cc3ef;padding:.6em}}blockquote{{color:#555}}
</style></head><body>
<h1>Clever contract report</h1>
<p><b>{e(verdict_text.splitlines()[0] if verdict_text else "")}</b></p>
<pre>{e(verdict_text)}</pre>
<p>{counts_by["PASS"]} passed, {counts_by["FAIL"]} failed, {counts_by["SKIP"]} skipped.</p>
<table>{info}</table>
<table><tr><th>Id</th><th>Level</th><th>Result</th><th>Reason</th></tr>
{chr(10).join(rows)}
</table>
{chr(10).join(blocks)}
</body></html>
"""


def _md_text(text: str) -> str:
    """Text for a Markdown table cell or paragraph: no markup, no HTML, no line breaks."""
    text = " ".join(clean(str(text)).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#!~])", r"\\\1", text)


def _md_code(text: str) -> str:
    """A fenced block that ``text`` cannot close (the fence is longer than any run of backticks)."""
    text = _clipped(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def render_markdown(results: list[CheckResult], *, verdict_text: str, meta: dict[str, str]) -> str:
    """A PR comment: the verdict, a table, then each failure's evidence and fix."""
    lines = ["## Clever contract report", ""]
    lines += [_md_text(line) + "  " for line in verdict_text.splitlines()] + [""]
    lines += [" · ".join(f"**{_md_text(k)}**: {_md_text(v)}" for k, v in meta.items()), ""]
    lines += ["| Id | Level | Result | Reason |", "|---|---|---|---|"]
    lines += [f"| {r.id} | {r.level} | {r.outcome} | {_md_text(r.reason)} |" for r in results]
    failed = [r for r in results if r.outcome == "FAIL"]
    for r in failed:
        lines += ["", f"### {r.id} — {_md_text(r.title)}: {_md_text(_status_line(r))}", "",
                  _md_text(r.reason), ""]
        rule = _rule_of(r)
        if rule:
            lines += [f"**Passes when:** {_md_text(rule)}", ""]
        fix = [text for name, text in r.sections if name == "Fix"]
        for name, text in r.sections:
            if name != "Fix":
                lines += [f"**{name}:**", "", _md_code(text), ""]
        if not r.sections and r.details:
            lines += [_md_code(r.details), ""]
        if fix:
            lines += [f"**How to fix it:** {_md_text(fix[0])}", ""]
        if r.seed:
            lines += [f"> Seed rule: {_md_text(r.seed)}", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(path: str | Path, results: list[CheckResult], *, verdict_text: str,
                 meta: dict[str, str]) -> None:
    """``--report``: HTML or Markdown, chosen by the file's extension."""
    fmt = report_format(path)
    render = render_html if fmt == "html" else render_markdown
    Path(path).write_text(render(results, verdict_text=verdict_text, meta=meta), encoding="utf-8")

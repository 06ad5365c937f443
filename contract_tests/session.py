"""The session every check runs in: ``Contract`` (config, simulator, personas, shared
observations, results, the per-check time limit) and ``open_contract`` (start or reach
the simulator, register the app, check the partner is listening).

Isolation: every check works on its own student (and, for grades, its own completion)
and reads only the journal entries and grades recorded after its own marks (journal
``after_id``, grade ``after_seq``), so checks never see each other's traffic and the
suite works against a shared simulator (``--sim-url``) that it never resets.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time
import traceback
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import httpx

from simulator.config import CONTROL_TOKEN_ENV

from .config import ContractConfig, ContractConfigError
from .harness import (BARS, DOCS_HOOK, USER_AGENT, Browse, Check, CheckResult, CompletionRun,
                      Fail, Fetch, LoginRun, SetupProblem, SimClient, SimError, Skip, browse,
                      client, clip, counts, one_line)


def health(url: str, timeout: float = 5.0) -> dict:
    """``GET {url}/_sim/health``; SetupProblem when nothing (or not the simulator) answers."""
    try:
        with client(timeout=timeout) as http:
            resp = http.get(url.rstrip("/") + "/_sim/health")
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SetupProblem(
            f"simulator not reachable at {url}: {type(exc).__name__}: {exc}\n"
            f"Start it (clever-sim serve --config partner.toml) or drop --sim-url and let the "
            f"runner start one (--sim-port)") from None
    if resp.status_code != 200 or not isinstance(body, dict) or body.get("status") != "ok":
        raise SetupProblem(f"{url}/_sim/health answered {resp.status_code}: "
                           f"{clip(resp.text, 200)} — is {url} the Clever simulator?")
    return body


def tcp_reachable(url: str, timeout: float = 3.0) -> str | None:
    """None when something listens at the URL's host:port, else the error in words."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"



# --- the session ---------------------------------------------------------------------------

class Contract:
    """Everything one suite run knows: config, simulator, personas, shared observations,
    results. Checks receive it and use its helpers."""

    def __init__(self, cfg: ContractConfig, sim_url: str, *, owns_simulator: bool,
                 level: str = "required", server: Any = None, control_token: str | None = None):
        self.cfg = cfg
        self.sim_url = sim_url.rstrip("/")
        self.sim = SimClient(self.sim_url, control_token)
        self.owns_simulator = owns_simulator
        self.level = level
        self._server = server
        self.results: dict[str, CheckResult] = {}
        self.via_runner = False
        self.on_result: Callable[[CheckResult], None] | None = None
        self.hook_dead: str | None = None
        self.step = ""
        self._lock = threading.RLock()
        self._memo: dict[str, Any] = {}
        self._next_student = itertools.count()
        self._next_assignment = itertools.count()
        self.partner_host = urlsplit(cfg.redirect_uri).netloc
        self.app_view: dict = {}
        self.students: list[dict] = []
        self.other_students: list[dict] = []
        self.launched: set[str] = set()   # students a code was minted for (the app may hold their il token)
        self.teachers: list[dict] = []
        self.start_mark = 0
        # Every request to Clever since start_mark, read after each check (LOGIN-010 judges
        # them all): the journal drops its oldest entries under load, so one read at the end
        # of the run could miss one; ids the journal no longer held when read, as ranges.
        self.clever_requests: list[dict] = []
        self.journal_gaps: list[tuple[int, int]] = []
        self._journal_read_to = 0
        self._journal_dropped: int | None = None
        self._journal_lock = threading.Lock()

    # --- start-up -------------------------------------------------------------------------
    @property
    def check_budget(self) -> float:
        """Hard limit for one check: its waits plus generous slack (never hangs)."""
        c = self.cfg
        return 3 * c.grade_timeout_s + 3 * (c.assignments_timeout_s + 5) + 3 * c.settle_s + 30

    def prepare(self) -> None:
        """Register the app, reset an owned simulator, pick personas, check the partner is up."""
        app = self._register()
        self.app_view = app
        if self.owns_simulator:
            self.sim.post("/_sim/reset")
        self.mark_start()
        people = self.sim.get("/_sim/personas")["data"]
        connected = app.get("districts") or []
        by_district: dict[str, dict[str, list[dict]]] = {}
        for p in people:  # staff, admins and contacts take no part in grade passback
            if p["district"] in connected and p["role"] in ("student", "teacher"):
                by_district.setdefault(p["district"], {"student": [], "teacher": []})[p["role"]].append(p)
        for kinds in by_district.values():  # people in a section first: they can launch from one
            for role in ("student", "teacher"):
                kinds[role].sort(key=lambda p: not p.get("sections", True))
        usable = [d for d in connected if by_district.get(d, {}).get("teacher")
                  and by_district[d]["student"]]
        if not usable:
            raise SetupProblem("the simulator's roster has no district (connected to your app) with "
                               "both a teacher and a student; use the default roster or add people")
        main = max(usable, key=lambda d: len(by_district[d]["student"]))
        self.district = main
        self.students = by_district[main]["student"]
        self.teachers = by_district[main]["teacher"]
        self.other_students = [s for d in connected if d != main
                               for s in by_district.get(d, {}).get("student", [])]
        for what, url in (("[app].assignments_url", self.cfg.assignments_url),
                          ("[contract].complete_assignment_hook", self.cfg.hook)):
            if url is None:
                continue
            problem = tcp_reachable(url)
            if problem:
                parts = urlsplit(url)
                raise SetupProblem(
                    f"partner not reachable at {parts.scheme}://{parts.netloc} (from {what} = {url}): "
                    f"{problem}\nStart your app first, with its Clever base URLs "
                    f"(https://clever.com, https://api.clever.com, "
                    f"https://grades-api.beta.clever.com) pointed at {self.sim_url} and its "
                    f"client_id/client_secret set to the ones in {self.cfg.path}")

    def _register(self) -> dict:
        spec = {k: v for k, v in self.cfg.app.items()}
        try:
            return self.sim.post("/_sim/apps", spec, ok=(201,))
        except SimError as exc:
            if exc.status == 400 and "already registered" in str(exc).lower():
                try:
                    return self.sim.call("PATCH", f"/_sim/apps/{self.cfg.client_id}", json=spec)
                except SimError as exc2:
                    raise SetupProblem(f"the simulator refused to update app "
                                       f"{self.cfg.client_id}: {exc2}{_errors_of(exc2.body)}") from None
            if exc.status is not None:
                raise SetupProblem(f"the simulator refused the [app] of {self.cfg.path}: "
                                   f"{exc}{_errors_of(exc.body)}") from None
            raise SetupProblem(str(exc)) from None

    def close(self) -> None:
        self.sim.close()
        if self._server is not None:
            self._server.stop()
            self._server = None

    # --- running a check ------------------------------------------------------------------
    def run(self, chk: Check) -> CheckResult:
        """Run one check in a worker thread under ``check_budget``; record its result."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["reason"] = chk.func(self)
            except Fail as exc:
                box["fail"] = exc
            except Skip as exc:
                box["skip"] = exc
            except SimError as exc:
                box["error"] = f"the simulator's control API failed: {exc}"
            except Exception as exc:  # a bug in the suite: report it, never a traceback
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                box["error"] = (f"the contract suite hit an unexpected {type(exc).__name__}: {exc} "
                                f"(at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}); this is a "
                                f"bug in the suite — please report it")

        self.step = "starting"
        started = time.monotonic()
        worker = threading.Thread(target=target, name=f"contract-{chk.id}", daemon=True)
        worker.start()
        worker.join(self.check_budget)
        took = time.monotonic() - started
        base = dict(id=chk.id, title=chk.title, level=chk.level, seed=chk.seed, duration_s=took)
        if worker.is_alive():
            result = CheckResult(**base, outcome="FAIL",
                                 reason=f"did not finish within {self.check_budget:.0f} s "
                                        f"(stopped while: {self.step})",
                                 details="The check was abandoned so the suite does not hang.")
        elif "fail" in box:
            exc = box["fail"]
            result = CheckResult(**base, outcome="FAIL", reason=one_line(exc.summary, 300),
                                 details=exc.details(), sections=list(exc.sections))
        elif "skip" in box:
            result = CheckResult(**base, outcome="SKIP", reason=one_line(str(box["skip"]), 300),
                                 details=str(box["skip"]) if len(str(box["skip"])) > 300 else "")
        elif "error" in box:
            result = CheckResult(**base, outcome="FAIL", reason=one_line(box["error"], 300))
        else:
            result = CheckResult(**base, outcome="PASS", reason=one_line(box.get("reason") or "ok", 300))
        result.counted = result.outcome == "FAIL" and counts(chk.level, self.level)
        try:  # before the next check's traffic can push this one's out of the journal
            self.observe_journal()
        except SimError:
            pass  # LOGIN-010 reads again, and says so if it cannot
        if result.outcome == "FAIL" and not result.details.strip():
            result.details = ""
        self.results[chk.id] = result
        if self.on_result is not None:
            self.on_result(result)
        return result

    def mark_start(self) -> None:
        """Where the run's journal starts: LOGIN-010 judges every entry after it."""
        newest = self.sim.get("/_sim/journal", params={"limit": 1})
        with self._journal_lock:
            self.start_mark = newest["data"][0]["id"] if newest["data"] else 0
            self._journal_read_to = self.start_mark
            # An empty journal (just reset) gives no id to count from: count its drops instead.
            self._journal_dropped = None if newest["data"] else int(newest.get("dropped") or 0)
            self.clever_requests, self.journal_gaps = [], []

    def observe_journal(self) -> None:
        """Keep what LOGIN-010 judges (method, path, query, status, client_id) of every journal entry
        recorded since the last call, and the ids already dropped when read (ids are
        consecutive, so a missing one is a request nobody will see again)."""
        with self._journal_lock:
            # every entry since the last read, a page at a time (one read returns at most
            # 10,000: with a larger journal_cap the oldest looked dropped)
            entries, page = self.sim.journal_pages(self._journal_read_to)
            expected = self._journal_read_to + 1
            if self._journal_dropped is not None and entries:  # the first entry since an empty start
                lost = int(page.get("dropped") or 0) - self._journal_dropped
                expected = entries[0]["id"] - max(lost, 0)
                self._journal_dropped = None
            for entry in entries:
                if entry["id"] > expected:
                    self.journal_gaps.append((expected, entry["id"] - 1))
                expected = entry["id"] + 1
                if not str(entry.get("path", "")).startswith("/_sim"):
                    self.clever_requests.append({key: entry.get(key) for key in
                                                 ("id", "method", "path", "query", "status",
                                                  "client_id")})
            self._journal_read_to = expected - 1

    def doing(self, what: str) -> None:
        self.step = what

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._memo:
                self._memo[key] = make()
            return self._memo[key]

    # --- personas -------------------------------------------------------------------------
    def fresh_student(self, *, other_district: bool = False, never_launched: bool = False) -> dict:
        """A student not used by an earlier check of this run (cycles on tiny rosters);
        ``never_launched``: preferably one the app has no il token of (no code minted)."""
        if other_district and self.other_students:
            return self.other_students[next(self._next_student) % len(self.other_students)]
        student = self.students[next(self._next_student) % len(self.students)]
        for _ in range(len(self.students) if never_launched else 0):
            if student["id"] not in self.launched:
                break
            student = self.students[next(self._next_student) % len(self.students)]
        return student

    def teacher_token(self, index: int = 0) -> tuple[dict, str]:
        teacher = self.teachers[index % len(self.teachers)]

        def mint() -> str:
            return self.sim.post("/_sim/tokens", {"client_id": self.cfg.client_id,
                                                  "user_id": teacher["id"]})["access_token"]
        return teacher, self.memo(f"teacher-token-{teacher['id']}", mint)

    # --- assignments ------------------------------------------------------------------------
    def fetch_assignments(self, token: str | None) -> Fetch:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        shown = "\n".join(f"{k}: {v}" for k, v in headers.items() if k == "Authorization")
        fetch = Fetch(request=f"GET {self.cfg.assignments_url}" + (f"\n{shown}" if shown else
                                                                   "\n(no Authorization header)"),
                      token=token)
        limit = self.cfg.assignments_timeout_s
        self.doing(f"waiting for GET {self.cfg.assignments_url}")
        fetch.mark = self.sim.journal_mark()
        started = time.perf_counter()
        try:
            with client(timeout=httpx.Timeout(limit + 20.0, connect=5.0)) as http:
                resp = http.get(self.cfg.assignments_url, headers=headers)
        except httpx.TimeoutException:
            fetch.seconds = time.perf_counter() - started
            fetch.error = f"no answer within {limit + 20:g} s"
            return fetch
        except httpx.HTTPError as exc:
            fetch.seconds = time.perf_counter() - started
            fetch.error = f"could not reach it: {type(exc).__name__}: {exc}"
            return fetch
        fetch.seconds = time.perf_counter() - started
        fetch.status = resp.status_code
        fetch.content_type = resp.headers.get("content-type", "")
        fetch.text = resp.text
        fetch.bom = resp.content.startswith(b"\xef\xbb\xbf")
        fetch.raw = resp.content
        fetch.headers = {k.lower(): v for k, v in resp.headers.items()}
        fetch.http_version = resp.http_version
        try:
            fetch.doc = resp.json()
        except ValueError as exc:
            fetch.json_error = str(exc)
        return fetch

    def first_fetch(self) -> Fetch:
        """The first teacher's GET of the assignments list (shared by ASSIGN checks)."""
        def make() -> Fetch:
            _, token = self.teacher_token(0)
            return self.fetch_assignments(token)
        return self.memo("first-fetch", make)

    def assignment_ids(self) -> list[str]:
        """Usable ids from the partner's list, or Skip naming why there are none."""
        fetch = self.first_fetch()
        ids = [i for i in fetch.ids() if i.strip()]
        if not ids:
            why = fetch.error or (f"HTTP {fetch.status}" if fetch.status != 200 else
                                  "the answer has no usable assignments")
            raise Skip(f"not judged: needs an assignment id from your assignments list, which "
                       f"could not be read ({one_line(why, 120)}); see ASSIGN-001/ASSIGN-002")
        return list(dict.fromkeys(ids))

    def next_assignment(self) -> str:
        ids = self.assignment_ids()
        return ids[next(self._next_assignment) % len(ids)]

    # --- login ------------------------------------------------------------------------------
    def mint_code(self, student: dict, *, assignment_id: str | None = None) -> dict:
        body = {"client_id": self.cfg.client_id, "user_id": student["id"]}
        self.launched.add(student["id"])
        if assignment_id is not None:
            body["assignment_id"] = assignment_id
        return self.sim.post("/_sim/codes", body)

    def visit(self, url: str, cookies: CookieJar | None = None) -> Browse:
        self.doing(f"browsing {url}")
        return browse(url, self.partner_host, timeout=max(10.0, self.cfg.assignments_timeout_s),
                      cookies=cookies)

    def login(self, student: dict, *, assignment_id: str | None = None, url: str | None = None,
              code: str | None = None, cookies: CookieJar | None = None) -> LoginRun:
        """Follow a Schoology launch link (``state=assignment:{id}``) or a plain login link,
        in a fresh browser or one with ``cookies`` (what an earlier visit left)."""
        if url is None:
            minted = self.mint_code(student, assignment_id=assignment_id)
            url, code = minted["redirect_url"], minted["code"]
        state = f"assignment:{assignment_id}" if assignment_id is not None else None
        mark = self.sim.journal_mark()
        visit = self.visit(url, cookies)
        entries = self.sim.journal_since(mark)
        return LoginRun(student, state, code or "", url, mark, visit, entries)

    def forged_login_url(self, code: str, state: str | None) -> str:
        params = {"code": code, "scopes": " ".join(self.app_view.get("scopes") or [])}
        if state is not None:
            params["state"] = state
        sep = "&" if urlsplit(self.cfg.redirect_uri).query else "?"
        return self.cfg.redirect_uri + sep + urlencode(params)

    # --- grades -----------------------------------------------------------------------------
    def require_hook(self) -> str:
        if not self.cfg.hook:
            raise Skip(f"not run: no [contract].complete_assignment_hook in "
                       f"{Path(self.cfg.path).name} (see {DOCS_HOOK}). Grade checks need a "
                       f"test-only endpoint that makes your app finish an assignment for a "
                       f"student and send the grade, e.g. complete_assignment_hook = "
                       f"\"http://localhost:5001/test-hooks/complete\"")
        return self.cfg.hook

    def link(self, student: dict, assignment_id: str) -> None:
        """Provider state "a teacher linked this assignment in the student's section"."""
        for section in student.get("sections") or []:
            try:
                self.sim.post("/_sim/links", {"section_id": section, "client_id": self.cfg.client_id,
                                              "assignment_id": assignment_id})
            except SimError:
                pass  # an id the simulator cannot link (e.g. too long): grades still arrive
            return

    def complete(self, student: dict, assignment_id: str, score: float, *,
                 fault: dict | list[dict] | None = None, settle: bool = False,
                 quiet_s: float | None = None, silence_kills_hook: bool = True) -> CompletionRun:
        """POST the completion hook, then watch for the grade (and every grade POST).

        Waits until the grade for (student, assignment) is stored (then ``settle_s`` more
        when ``settle``), or the app is clearly done without it: its hook answered and no
        new grade POST came for ``settle_s`` (after a final answer from Clever, or after
        the hook reported a failure), or ``grade_timeout_s`` passed.

        A hook that hangs, cannot be reached, or answers 2xx without any grade POST
        following within ``grade_timeout_s`` is remembered: later completions fail at
        once with "not run" instead of waiting again (the first check says why), unless
        ``silence_kills_hook`` is False: a check whose own score the app may skip (0).
        """
        hook = self._live_hook()
        cfg = self.cfg
        run = self._completion(hook, student, assignment_id, score)
        run.mark = self.sim.journal_mark()
        faults = [fault] if isinstance(fault, dict) else list(fault or [])
        for planned in faults:  # consumed in this order
            self.sim.post("/_sim/faults", planned)
        quiet_for = cfg.settle_s if quiet_s is None else quiet_s
        self.doing(f"waiting for the completion hook POST {hook}")
        deadline = time.monotonic() + cfg.grade_timeout_s
        self._post_hook(run)
        hook_done = time.monotonic()
        self.doing(f"waiting for the grade of student {student['id']} for {assignment_id!r}")
        last_count, last_change, grade_seen = -1, hook_done, None
        while True:
            run.grade = self._new_grade(run)
            run.entries = self.sim.journal_since(run.mark)
            now = time.monotonic()
            count = len(run.posts) + len(run.faulted)
            if count != last_count:
                last_count, last_change = count, now
            quiet = now - last_change >= quiet_for
            if run.grade is not None:
                grade_seen = grade_seen or now
                if not settle or now - grade_seen >= cfg.settle_s:
                    break
            elif run.hook_error is None:
                hook_ok = run.hook_status is not None and 200 <= run.hook_status < 300
                tried = run.posts + run.faulted
                last = max(tried, key=lambda e: e["id"]) if tried else None
                final = last is not None and last.get("status") not in (429, 444) \
                    and last.get("status", 0) < 500
                if quiet and (not hook_ok or final):
                    break
            if now >= deadline:
                break
            time.sleep(0.05)
        if silence_kills_hook and run.grade is None and run.hook_error is None and not run.posts \
                and not run.faulted and run.hook_status is not None and 200 <= run.hook_status < 300:
            self.hook_dead = (f"the completion hook {hook} answered {run.hook_status} but no grade "
                              f"POST reached Clever within {cfg.grade_timeout_s:g} s in an earlier check")
        if faults:
            paths = {f["path"] for f in faults}
            pending = [f for f in self.sim.get("/_sim/faults")["data"] if f.get("path") in paths]
            if pending:
                self.sim.call("DELETE", "/_sim/faults")
        return run

    def complete_together(self, completions: list[tuple[dict, str, float]]) -> list[CompletionRun]:
        """POST the hook for several completions at the same moment (one thread each, released
        together), then watch until every grade arrived or ``grade_timeout_s`` passed.

        Each run's ``entries`` are every journal entry since the common mark: the other
        completions' grade POSTs are visible in each, which is what a mix-up shows.
        """
        hook = self._live_hook()
        cfg = self.cfg
        runs = [self._completion(hook, student, aid, score) for student, aid, score in completions]
        mark = self.sim.journal_mark()
        gate = threading.Barrier(len(runs))

        def post_hook(run: CompletionRun) -> None:
            run.mark = mark
            try:
                gate.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass  # post anyway: a late thread only makes the completions less simultaneous
            self._post_hook(run)

        self.doing(f"waiting for {len(runs)} completion hooks posted at the same moment")
        threads = [threading.Thread(target=post_hook, args=(run,), daemon=True) for run in runs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + cfg.grade_timeout_s
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
        self.doing("waiting for the grades of the simultaneous completions")
        while True:
            for run in runs:
                run.grade = self._new_grade(run)
            if all(run.grade is not None for run in runs) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        time.sleep(cfg.settle_s)   # a mixed-up app may overwrite a grade right after
        entries = self.sim.journal_since(mark)
        for run in runs:
            run.grade = self._new_grade(run)
            run.entries = entries
        return runs

    def _live_hook(self) -> str:
        """The completion hook's URL; "not run" once an earlier check found it dead."""
        hook = self.require_hook()
        if self.hook_dead:
            raise Fail(f"not run: {self.hook_dead}",
                       fix="make the hook answer (it should answer once your app has sent "
                           "the grade, or at once with 202 and send it right after), and "
                           "send the grade for every completion it is given")
        return hook

    def _completion(self, hook: str, student: dict, assignment_id: str, score: float) -> CompletionRun:
        """A completion about to be posted: the assignment linked in the student's section,
        and the newest stored grade's seq, so only a grade sent from now on counts."""
        cfg = self.cfg
        self.link(student, assignment_id)
        existing = self.sim.grades(client_id=cfg.client_id, user_id=student["id"],
                                   assignment_id=assignment_id)
        seq_mark = max((g.get("seq", 0) for g in existing), default=0)
        body = {"user_id": student["id"], "assignment_id": assignment_id,
                "district_id": student["district"], "score": score}
        return CompletionRun(student, assignment_id, score, hook, body, 0, seq_mark,
                             client_id=cfg.client_id)

    def _post_hook(self, run: CompletionRun) -> None:
        """POST the completion to the hook (its answer, or why there was none, on ``run``);
        a hook that hangs or cannot be reached is remembered as dead (``hook_dead``)."""
        timeout = self.cfg.grade_timeout_s
        started = time.monotonic()
        try:
            with client(timeout=httpx.Timeout(timeout, connect=min(5.0, timeout))) as http:
                resp = http.post(run.hook, json=run.hook_body)
            run.hook_status, run.hook_text = resp.status_code, resp.text.strip()
        except httpx.TimeoutException:
            run.hook_error = f"no answer within grade_timeout_s = {timeout:g} s"
            self.hook_dead = f"the completion hook {run.hook} did not answer within " \
                             f"{timeout:g} s (grade_timeout_s) in an earlier check"
        except httpx.HTTPError as exc:
            run.hook_error = f"could not reach it: {type(exc).__name__}: {exc}"
            if isinstance(exc, httpx.ConnectError):
                self.hook_dead = f"the completion hook {run.hook} could not be reached ({exc})"
        run.hook_seconds = time.monotonic() - started

    def _new_grade(self, run: CompletionRun) -> dict | None:
        """The newest grade for the run's student and assignment stored since it began."""
        found = self.sim.grades(client_id=self.cfg.client_id, user_id=run.student["id"],
                                assignment_id=run.assignment_id, after_seq=run.seq_mark)
        return found[-1] if found else None


def _errors_of(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "".join(f"\n  {e.get('field')}: {e.get('problem')}" + (f" ({e['hint']})" if e.get("hint") else "")
                       for e in body["errors"] if isinstance(e, dict))
    return ""


def open_contract(cfg: ContractConfig, *, sim_url: str | None = None, sim_port: int = 8080,
                  level: str = "required", control_token: str | None = None) -> Contract:
    """Connect to ``sim_url`` (never reset) or start a simulator on 127.0.0.1:``sim_port``
    (reset at start), register the app and check the partner is listening.

    ``control_token``: the running simulator's control token (default: env
    CLEVER_SIM_CONTROL_TOKEN, which a simulator started here also takes)."""
    control_token = control_token or os.environ.get(CONTROL_TOKEN_ENV) or None
    if level not in BARS:
        raise ContractConfigError(f"--level must be one of {', '.join(BARS)}, not {level!r}")
    server = None
    if sim_url:
        if not re.match(r"https?://[^/]", sim_url):
            raise ContractConfigError(f"--sim-url {sim_url!r} is not an http(s) URL, e.g. "
                                      f"http://127.0.0.1:8080")
        health(sim_url)
        url = sim_url
    else:
        server = start_simulator(cfg, sim_port, control_token)
        url = server.url
    contract = Contract(cfg, url, owns_simulator=server is not None, level=level, server=server,
                        control_token=control_token)
    try:
        contract.prepare()
    except BaseException:
        contract.close()
        raise
    return contract


def start_simulator(cfg: ContractConfig, port: int, control_token: str | None = None) -> Any:
    """The simulator, in this process, on 127.0.0.1:``port`` (throwaway in-memory state)."""
    from simulator.config import ConfigError
    from simulator.embedded import start_simulator as start_embedded
    from simulator.roster import RosterError
    from simulator.serving import ServerUnavailable

    config_file = cfg.path if Path(cfg.path).is_file() else None
    settings = {"DB": ":memory:", **({"CONTROL_TOKEN": control_token} if control_token else {})}
    try:
        return start_embedded(settings, "127.0.0.1", port, config_file=config_file)
    except ConfigError as exc:
        raise ContractConfigError(f"simulator settings: {exc}") from None
    except RosterError as exc:
        raise ContractConfigError(f"simulator roster: {exc.one_line()}") from None
    except ServerUnavailable as exc:  # CLEVER_SIM_SERVER names no server that runs here
        raise ContractConfigError(str(exc)) from None
    except OSError as exc:
        raise SetupProblem(
            f"cannot start the simulator on 127.0.0.1:{port}: {exc.strerror or exc}. "
            f"Free the port, or pass --sim-port N (and point your app's Clever URLs at "
            f"http://127.0.0.1:N), or --sim-url of a simulator you started") from None



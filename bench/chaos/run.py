"""The chaos suite's driver: set the deployment up, run each fault under the workload, check
the invariants after each, print the table, exit non-zero on a broken invariant or a 5xx that
is not a 503.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
import urllib.error
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.chaos import checks, faults
from bench.chaos.infra import InfraError
from bench.chaos.roles import ROOT, now
from bench.chaos.stack import Stack
from bench.chaos.workload import (
    Reader,
    Recorder,
    Workload,
    failures_by_endpoint,
    is_failure,
    summary,
)

TERMINAL_BOUND = 240.0  # an operation still active this long after the fault ended is stuck
SETTLE_BOUND = 90.0  # rows and usage must match the platform within this (resync: 60 s)


@dataclass
class Row:
    fault: faults.Fault
    recovered: float | None = None
    recovery_note: str = ""
    terminal: float | None = None
    terminal_note: str = ""
    answers: Counter = field(default_factory=Counter)
    outage_answers: Counter = field(default_factory=Counter)
    failures: int = 0  # 5xx other than 503
    violations: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    gave_up: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed_endpoints: list[str] = field(default_factory=list)
    error: str = ""


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.logs = ROOT / "test-artifacts" / "chaos"
        if self.logs.exists():
            shutil.rmtree(self.logs)
        self.logs.mkdir(parents=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.stack = Stack(self.workdir, self.logs)
        self.recorder = Recorder()
        self.faults = [cls() for cls in faults.ALL
                       if not args.only or cls().key in args.only]
        self.slugs = [f"chaos-{f.key}" for f in self.faults] or ["chaos-trials"]
        self.token = self.session = ""
        self.browser = None
        self.rows: list[Row] = []
        self.trial_figures: list[str] = []
        self.notes: list[str] = []

    def slug(self, fault: faults.Fault) -> str:
        return f"chaos-{fault.key}"

    def say(self, text: str) -> None:
        print(f"[{now():7.1f} s] {text}", flush=True)

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        self.say(f"data stores: PostgreSQL on {self.stack.pg.port}, Redis broker on "
                 f"{self.stack.broker.port}, Redis cache and channel layer on "
                 f"{self.stack.cache.port} (work dir {self.workdir}, logs {self.logs})")
        self.stack.start_stores()
        self.stack.manage("migrate", "--no-input", "-v0")
        seeded = json.loads(self.stack.run_module("bench.chaos.seed", *self.slugs))
        self.token, self.session = seeded["token"], seeded["session"]
        self.say("starting the platform, web (2 workers), 2 Celery workers, beat, the watcher")
        self.stack.start_all()
        if not self.args.no_browser:
            from bench.chaos.browser import Browser

            self.browser = Browser(self.stack.web_url, self.session, self.slugs, self.recorder)
            self.browser.start()
            opened = self.wait(lambda: self.browser.open_sockets() >= 50, 60, 0.5)
            self.say(f"browser: {self.browser.open_sockets()} live regions connected"
                     + ("" if opened else " (not all 50 within 60 s)"))
        self.say("ready")

    def wait(self, check, timeout: float, interval: float = 0.5) -> bool:
        deadline = now() + timeout
        while now() < deadline:
            if check():
                return True
            time.sleep(interval)
        return bool(check())

    # ------------------------------------------------------------------ probes

    def green(self) -> bool:
        """The web role answers: ready, the API lists, the page renders."""
        probe = Reader(self.stack.web_url, self.token, self.session, self.slugs[0],
                       self.recorder)
        try:
            ready = requests.get(self.stack.web_url + "/readyz", timeout=10)
            self.recorder.add("probe", "GET", "/readyz", str(ready.status_code))
        except requests.RequestException:
            self.recorder.add("probe", "GET", "/readyz", "conn")
            return False
        if ready.status_code != 200:
            return False
        listed = probe.api.once("GET", f"/api/v1/tenants/{self.slugs[0]}/clusters/",
                                who="probe")
        return listed is not None and listed.status_code == 200 \
            and probe.page(f"/t/{self.slugs[0]}/clusters/") == 200

    def all_terminal(self, slug: str) -> bool:
        ops = self.stack.db.operations(slug)
        return ops is not None and all(op["state"] in checks.TERMINAL for op in ops)

    # ------------------------------------------------------------------ one fault

    def run_fault(self, fault: faults.Fault) -> Row:
        row = Row(fault)
        slug = self.slug(fault)
        t_recovery_end = now()
        try:
            row.restarted = self.stack.restore()
            if row.restarted:
                self.say(f"restored the baseline: started {', '.join(row.restarted)}")
            self.say(f"fault {fault.key}: {fault.title}")
            fault.prepare(self)
        except InfraError as error:
            row.error = f"could not set the fault up: {error}"
            self.print_row(row)
            return row
        t_start = now()
        reader = Reader(self.stack.web_url, self.token, self.session, slug,
                        self.recorder).start()
        workload = Workload(self.stack.web_url, self.token, slug, self.recorder).start()
        try:
            fault.inject(self, workload)
            self.say(f"  injected at {fault.t_fault - t_start:.1f} s, ended at "
                     f"{fault.t_heal - t_start:.1f} s into the workload")
            row.recovered, row.recovery_note = self._recovery(fault)
            t_recovery_end = now()
            self.say(f"  recovered: {faults.fmt(row.recovered)} s {row.recovery_note}")
            done, why = self._terminal(slug, workload, fault.t_heal + TERMINAL_BOUND)
            row.terminal = now() - fault.t_heal if done else None
            row.terminal_note = why
            self.say(f"  every operation terminal: {faults.fmt(row.terminal)} s after the "
                     f"fault ended {why}")
            row.violations = self._check(slug, workload, why)
        except Exception as error:  # noqa: BLE001 - report the fault's failure, go on
            row.error = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        finally:
            workload.stop()
            reader.stop()
        fault.finish(self)
        answers = self.recorder.between(t_start, now())
        row.answers = summary(answers)
        row.outage_answers = summary(self.recorder.between(
            fault.t_fault, fault.t_heal + row.recovered if row.recovered is not None
            else t_recovery_end))
        row.failed_endpoints = failures_by_endpoint(answers)
        row.failures = sum(n for outcome, n in row.answers.items() if is_failure(outcome))
        row.exited = [f"{r.name} (code {r.exit_code()})"
                      for r in self.stack.exited_by_themselves(since=t_start)]
        row.outcomes, row.gave_up, row.refused = (workload.outcomes, workload.gave_up(),
                                                  workload.refused())
        self.print_row(row)
        return row

    def _terminal(self, slug: str, workload: Workload, until: float) -> tuple[bool, str]:
        """Wait until the workload is done and no operation of the tenant is queued or
        running; (True, "") then, else (False, why it stopped waiting)."""
        while True:
            if workload.done() and self.all_terminal(slug):
                return True, ""
            if not self.stack.alive("worker"):
                return False, "(never: no worker process left)"
            if now() >= until:
                return False, f"(not within {TERMINAL_BOUND:.0f} s)"
            time.sleep(0.5)

    def _recovery(self, fault: faults.Fault) -> tuple[float | None, str]:
        deadline = fault.t_heal + fault.recovery_bound
        while now() < deadline:
            answer = fault.recovered(self)
            if answer is True:
                return now() - fault.t_heal, ""
            if isinstance(answer, str):
                return None, f"(never: {answer})"
            time.sleep(0.5)
        return None, f"(not within {fault.recovery_bound:.0f} s)"

    def _check(self, slug: str, workload: Workload, why: str) -> list[str]:
        stack = self.stack
        violations = []
        if why:
            violations += checks.stuck(stack.db, slug, why.strip("()"))
        deadline = now() + SETTLE_BOUND
        unsettled = checks.settled(stack.db, stack.platform, slug)
        while unsettled and now() < deadline:
            time.sleep(2)
            unsettled = checks.settled(stack.db, stack.platform, slug)
        violations += unsettled
        try:
            violations += checks.lost_intent(stack.db, slug, workload.intents)
            violations += checks.duplicates(stack.db, stack.platform, slug,
                                            stack.platform.requests())
            violations += checks.audit(stack.db, slug)
        except (checks.psycopg.Error, urllib.error.URLError, OSError) as error:
            violations.append(f"could not check: {error}")
        return violations

    # ------------------------------------------------------------------ output

    def print_row(self, row: Row) -> None:
        fault = row.fault
        lines = [f"  requests: {self.statuses(row.answers)}",
                 f"  during the outage: {self.statuses(row.outage_answers)}",
                 *(f"    {line}" for line in row.failed_endpoints),
                 "  operations: " + (", ".join(f"{k} ×{n}" for k, n in
                                               sorted(row.outcomes.items())) or "none")]
        if row.gave_up:
            lines.append(f"  gave up after retries: {', '.join(row.gave_up)}")
        if row.refused:
            lines.append(f"  refused: {'; '.join(row.refused[:5])}")
        lines += [f"  {figure}" for figure in fault.figures]
        lines += [f"  note: {note}" for note in fault.notes]
        if row.exited:
            lines.append(f"  exited by themselves: {', '.join(row.exited)}")
        lines += [f"  VIOLATION {v}" for v in row.violations]
        if row.error:
            lines.append(f"  ERROR {row.error}")
        print("\n".join(lines), flush=True)

    @staticmethod
    def statuses(counts: Counter) -> str:
        def order(item: tuple[str, int]) -> tuple[int, str]:
            return (0 if item[0].isdigit() else 1, item[0])

        return " ".join(f"{k}×{n}" for k, n in sorted(counts.items(), key=order)) or "none"

    @staticmethod
    def failed(counts: Counter) -> str:
        bad = Counter({k: n for k, n in counts.items() if not k.isdigit() or int(k) >= 400})
        return Suite.statuses(bad) if bad else "none"

    def table(self) -> str:
        header = ("| fault | recovered (s after fault end) | requests failed (how) | 5xx ≠ 503 "
                  "| all operations terminal (s after fault end) | invariant violations |")
        lines = [header, "|---|---|---|---|---|---|"]
        for row in self.rows:
            recovered = f"{faults.fmt(row.recovered)} {row.recovery_note}".strip()
            terminal = f"{faults.fmt(row.terminal)} {row.terminal_note}".strip()
            lines.append(
                f"| {row.fault.title} | {recovered} "
                f"| {self.failed(row.answers)} | {row.failures} "
                f"| {terminal} | {len(row.violations)}"
                + (" (error)" if row.error else "") + " |")
        figures = [f for row in self.rows for f in row.fault.figures] + self.trial_figures
        exits = [f"{row.fault.key}: {', '.join(row.exited)}" for row in self.rows if row.exited]
        text = "\n".join(lines)
        if figures:
            text += "\n\nSpecial figures:\n" + "\n".join(f"- {f}" for f in figures)
        if exits:
            text += "\n\nRoles that exited by themselves:\n" + "\n".join(f"- {e}" for e in exits)
        return text

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        started = now()
        try:
            self.setup()
            for fault in self.faults:
                self.rows.append(self.run_fault(fault))
            if self.args.trials:
                self.say(f"web SIGTERM trials: {self.args.trials}")
                if self.browser is not None:
                    self.browser.blank()
                self.stack.restore()
                self.trial_figures = faults.sigterm_trials(self, self.args.trials)
                for figure in self.trial_figures:
                    print(f"  {figure}")
        except InfraError as error:
            print(f"\nmake chaos: {error}", file=sys.stderr)
            return 2
        finally:
            if self.browser is not None:
                self.browser.close()
            if not self.args.keep:
                self.stack.stop_all()
                shutil.rmtree(self.workdir, ignore_errors=True)
        violations = sum(len(r.violations) for r in self.rows)
        failures = sum(r.failures for r in self.rows)
        errors = [r for r in self.rows if r.error]
        table = self.table()
        print("\n" + table)
        print(f"\n{len(self.rows)} faults in {now() - started:.0f} s: {violations} invariant "
              f"violation(s), {failures} answer(s) 5xx other than 503"
              + (f", {len(errors)} fault(s) that could not be run" if errors else "")
              + f". Logs: {self.logs}")
        (self.logs / "table.md").write_text(table + "\n")
        return 1 if violations or failures or errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos",
                                     description="Run the portal's chaos suite.")
    parser.add_argument("--only", nargs="*", default=[],
                        choices=[cls().key for cls in faults.ALL],
                        help="run only these faults (default: all)")
    parser.add_argument("--trials", type=int, default=20,
                        help="web SIGTERM exit-time trials (0: none)")
    parser.add_argument("--no-browser", action="store_true",
                        help="no browser: the 50 live regions are not opened")
    parser.add_argument("--keep", action="store_true",
                        help="leave the processes and the work directory when done")
    args = parser.parse_args(argv)
    # Stopped from outside (timeout, CI cancelling): still stop every process and store.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return Suite(args).run()

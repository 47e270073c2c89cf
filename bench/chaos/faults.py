"""The faults, each in turn. A fault prepares the topology it needs, injects itself while the
workload runs (``t_fault``), ends (``t_heal``: the store is back, the replacement started...),
says when the system has recovered, and adds its special figures to its row.

``recovered`` answers True, False (not yet), or a sentence when waiting longer is pointless
(no watcher process left to lead, say).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.chaos.infra import wait_until
from bench.chaos.roles import now

if TYPE_CHECKING:
    from bench.chaos.run import Suite
    from bench.chaos.workload import Workload

Recovery = bool | str


def fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.1f}"


@dataclass
class Fault:
    key: str = ""
    title: str = ""
    inject_after: float = 3.0  # seconds into the workload
    recovery_bound: float = 180.0
    t_fault: float = 0.0
    t_heal: float = 0.0
    figures: list[str] = field(default_factory=list)  # special figures, in words
    notes: list[str] = field(default_factory=list)

    def prepare(self, suite: Suite) -> None:
        """Before the workload starts."""

    def inject(self, suite: Suite, workload: Workload) -> None:
        time.sleep(max(0.0, workload.started_at + self.inject_after - now()))
        self.t_fault = now()
        self.act(suite)
        self.t_heal = self.t_heal or now()

    def act(self, suite: Suite) -> None:
        raise NotImplementedError

    def recovered(self, suite: Suite) -> Recovery:
        return suite.green() and self.leading(suite)

    def leading(self, suite: Suite) -> Recovery:
        if suite.stack.leader() is not None:
            return True
        if not suite.stack.alive("watcher"):
            return "no watcher process left"
        return False

    def finish(self, suite: Suite) -> None:
        """After the checks: special figures."""


# --------------------------------------------------------------------------- processes


@dataclass
class WorkerKilled(Fault):
    key: str = "worker-kill"
    title: str = "worker SIGKILLed mid-operation"
    recovery_bound: float = 300.0
    victim: int | None = None
    attempts: int = 0
    taken_over: float | None = None

    def prepare(self, suite: Suite) -> None:
        # One worker left, so the one sending is the one killed; the platform answers this
        # tenant's first create slowly, so the kill lands while the worker waits for it.
        for extra in suite.stack.alive("worker")[1:]:
            extra.terminate(60, group=True)
        suite.stack.platform.add_fault(
            method="POST", path=f"namespaces/tenant-{suite.slug(self)}/kuberneteses",
            latency=6.0, times=1)

    def inject(self, suite: Suite, workload: Workload) -> None:
        slug = suite.slug(self)

        def in_flight() -> dict[str, Any] | None:
            for op in suite.stack.db.operations(slug) or []:
                submit = next((s for s in op["steps"] if s["key"] == "submit"), {})
                if op["state"] == "running" and not op["submitted"] \
                        and not op["lease_token"] and submit.get("state") == "running":
                    return op
            return None

        victim = None
        deadline = now() + 60
        while victim is None and now() < deadline:
            victim = in_flight()
            if victim is None:
                time.sleep(0.05)
        worker = suite.stack.alive("worker")[0]
        if victim is None:
            self.notes.append("no operation seen in flight within 60 s; killed anyway")
        else:
            self.victim, self.attempts = victim["id"], victim["attempts"]
            time.sleep(0.5)
        self.t_fault = worker.kill()
        self.notes.append(f"{worker.name} killed"
                          + (f" while sending operation {self.victim}" if self.victim else ""))
        for _ in range(2):  # its replacement and the second worker, at once
            suite.stack.start("worker")
        self.t_heal = now()

    def recovered(self, suite: Suite) -> Recovery:
        if self.victim is None:
            return suite.green()
        op = next((o for o in suite.stack.db.operations(suite.slug(self)) or []
                   if o["id"] == self.victim), None)
        if op is not None and (op["attempts"] > self.attempts or op["state"] not in
                               ("queued", "running")):
            if self.taken_over is None:
                self.taken_over = now() - self.t_fault
            return suite.green()
        return False

    def finish(self, suite: Suite) -> None:
        self.figures.append(
            "dead worker's operation taken over in "
            + (f"{self.taken_over:.1f} s" if self.taken_over is not None
               else "— (not within the bound)" if self.victim else "— (no victim)"))


@dataclass
class WatcherKilled(Fault):
    key: str = "watcher-kill"
    title: str = "watcher SIGKILLed (replacement started at once)"
    back: float | None = None

    def act(self, suite: Suite) -> None:
        leader = suite.stack.leader() or suite.stack.alive("watcher")[0]
        self.t_fault = leader.kill()
        self.notes.append(f"{leader.name} killed")
        suite.stack.start("watcher")
        self.t_heal = self.t_fault

    def recovered(self, suite: Suite) -> Recovery:
        leading = self.leading(suite)
        if leading is not True:
            return leading
        if self.back is None:
            self.back = now() - self.t_fault
        return suite.green()

    def finish(self, suite: Suite) -> None:
        self.figures.append(f"a watcher leads again {fmt(self.back)} s after the kill")


@dataclass
class TwoWatchers(Fault):
    """A standby beside the leader, then the leader goes: killed, or its session cut."""

    standby: Any = None
    old: Any = None
    took_over: float | None = None
    new_leader: str = ""

    def prepare(self, suite: Suite) -> None:
        self.standby = suite.stack.start("watcher")
        if not wait_until(lambda: self.standby.said("waiting for its lock") is not None, 60, 0.2):
            self.notes.append("the standby never said it waits for the lock")

    def recovered(self, suite: Suite) -> Recovery:
        leading = self.leading(suite)
        if leading is not True:
            return leading
        leader = suite.stack.leader()
        if leader is not None and self.took_over is None:
            self.took_over = now() - self.t_fault
            self.new_leader = leader.name
        return suite.green()


@dataclass
class LeaderKilled(TwoWatchers):
    key: str = "leader-kill"
    title: str = "two watchers, leader SIGKILLed"

    def act(self, suite: Suite) -> None:
        self.old = suite.stack.leader()
        if self.old is None:
            self.notes.append("nobody led before the fault")
            return
        self.t_fault = self.old.kill()
        self.notes.append(f"{self.old.name} killed, {self.standby.name} on standby")

    def finish(self, suite: Suite) -> None:
        self.figures.append(f"{self.new_leader or 'no watcher'} took over "
                            f"{fmt(self.took_over)} s after the kill")


@dataclass
class LeaderSessionCut(TwoWatchers):
    key: str = "leader-session"
    title: str = "leader's database session terminated (process lives)"

    def act(self, suite: Suite) -> None:
        self.old = suite.stack.leader()
        backend = suite.stack.db.leader_backend()
        if self.old is None or backend is None:
            self.notes.append("nobody led before the fault")
            return
        self.t_fault = now()
        suite.stack.db.terminate(backend)
        self.notes.append(f"session of {self.old.name} terminated")

    def finish(self, suite: Suite) -> None:
        if self.old is None:
            return
        down = self.old.said("Lost the leader lock", since=self.t_fault)
        up = self.standby.said("Watching the management cluster", since=self.t_fault)
        overlap = (down - up) if down is not None and up is not None else None
        self.figures.append(f"{self.new_leader or 'no watcher'} held the lock "
                            f"{fmt(self.took_over)} s after the cut")
        self.figures.append(
            "old leader stepped down " + (f"{down - self.t_fault:.1f} s after the cut"
                                          if down is not None else "— (never said so)")
            + (f"; two leaders for {max(0.0, overlap):.1f} s" if overlap is not None else ""))
        if not self.old.alive():
            self.figures.append(f"old leader {self.old.name} exited by itself "
                                f"(code {self.old.exit_code()})")


# --------------------------------------------------------------------------- data stores


@dataclass
class RedisDown(Fault):
    key: str = "redis-down"
    title: str = "Redis killed for 30 s (broker, cache, channel layer)"
    seconds: float = 30.0

    def act(self, suite: Suite) -> None:
        suite.stack.broker.kill()
        suite.stack.cache.kill()
        time.sleep(self.seconds)
        suite.stack.cache.start()
        suite.stack.broker.start()


@dataclass
class PostgresDown(Fault):
    key: str = "postgres-down"
    title: str = "PostgreSQL stopped for 30 s, then restarted"
    seconds: float = 30.0
    back_by_itself: float | None = None
    watchers: list[Any] = field(default_factory=list)

    def act(self, suite: Suite) -> None:
        self.watchers = suite.stack.alive("watcher")
        suite.stack.pg.stop("fast")
        time.sleep(self.seconds)
        suite.stack.pg.start()

    def recovered(self, suite: Suite) -> Recovery:
        leader = suite.stack.leader()
        if leader is not None and leader in self.watchers and self.back_by_itself is None:
            self.back_by_itself = now() - self.t_heal
        return super().recovered(suite)

    def finish(self, suite: Suite) -> None:
        if self.back_by_itself is not None:
            answer = f"yes, {self.back_by_itself:.1f} s after the database returned"
        else:
            gone = [f"{w.name} exited (code {w.exit_code()})" for w in self.watchers
                    if not w.alive()]
            answer = "no" + (f": {', '.join(gone)}" if gone else ": alive but not leading")
        self.figures.append(f"watcher back by itself after the database restart: {answer}")


@dataclass
class BrokerDown(Fault):
    key: str = "broker-down"
    title: str = "Celery broker unreachable at commit for 30 s (cache, channel layer up)"
    inject_after: float = 0.0
    seconds: float = 30.0
    heal_wall: float = 0.0

    def act(self, suite: Suite) -> None:
        suite.stack.broker.kill()
        time.sleep(self.seconds)
        suite.stack.broker.start()
        self.heal_wall = time.time()

    def finish(self, suite: Suite) -> None:
        rows = suite.stack.db.rows(
            "SELECT count(*), count(o.started_at), "
            "extract(epoch FROM max(o.started_at)) FROM clusters_operation o "
            "JOIN portal_tenant t ON t.id = o.tenant_id WHERE t.slug = %s "
            "AND o.created_at <= to_timestamp(%s)", [suite.slug(self), self.heal_wall])
        if not rows or not rows[0][0]:
            self.figures.append("no operation was accepted during the broker outage")
            return
        accepted, started, last = rows[0]
        if started < accepted:
            self.figures.append(f"operations accepted during the broker outage: {started} of "
                                f"{accepted} ever started")
        else:
            self.figures.append(f"operations accepted during the broker outage ({accepted}) "
                                f"all started {max(0.0, float(last) - self.heal_wall):.1f} s "
                                f"after the broker returned")


# --------------------------------------------------------------------------- platform, web


@dataclass
class PlatformDown(Fault):
    key: str = "platform-down"
    title: str = "platform hangs up on every request for 60 s"
    seconds: float = 60.0

    def act(self, suite: Suite) -> None:
        suite.stack.platform.set_down(True)
        time.sleep(self.seconds)
        suite.stack.platform.set_down(False)


@dataclass
class WebRestart(Fault):
    key: str = "web-restart"
    title: str = "web SIGTERMed under 50 open WebSockets, back 10 s later"
    down_for: float = 10.0
    exit_took: float | None = None
    sockets_before: int = 0
    reconnected: float | None = None

    def prepare(self, suite: Suite) -> None:
        browser = suite.browser
        if browser is not None and not wait_until(lambda: browser.open_sockets() >= 50, 90, 1):
            browser.reload()  # a page opened afresh connects at once
            wait_until(lambda: browser.open_sockets() >= 50, 30, 0.5)

    def act(self, suite: Suite) -> None:
        self.sockets_before = suite.browser.open_sockets() if suite.browser else 0
        web = suite.stack.alive("web")[0]
        self.exit_took = web.terminate(30)
        self.t_exit = now()
        time.sleep(self.down_for)
        suite.stack.start("web")
        self.t_heal = now()

    def recovered(self, suite: Suite) -> Recovery:
        sockets = suite.browser.open_sockets() if suite.browser else 50
        if sockets >= 50 and self.reconnected is None:
            self.reconnected = now() - self.t_heal
        return sockets >= 50 and suite.green()

    def finish(self, suite: Suite) -> None:
        codes = ""
        if suite.browser is not None and (state := suite.browser.state()):
            seen: dict[Any, int] = {}
            for at, kind, _elt, code in state["events"]:
                if kind == "close" and self.t_fault <= at <= self.t_exit + 1:
                    seen[code] = seen.get(code, 0) + 1
            codes = ", close codes " + (", ".join(f"{c}×{n}" for c, n in sorted(
                seen.items(), key=lambda kv: str(kv[0]))) or "none seen")
        self.figures.append(
            f"web exit after SIGTERM with {self.sockets_before} sockets open: "
            + (f"{self.exit_took:.1f} s" if self.exit_took is not None
               else "did not exit within 30 s (killed)") + codes)
        self.figures.append(f"{'all 50' if self.reconnected is not None else 'not all'} "
                            f"sockets reconnected"
                            + (f" {self.reconnected:.1f} s after web returned"
                               if self.reconnected is not None else " within the bound"))


ALL = [WorkerKilled, WatcherKilled, LeaderKilled, LeaderSessionCut, RedisDown, PostgresDown,
       PlatformDown, WebRestart, BrokerDown]


def _terminate_into(role: Any, cap: float, results: dict[str, float | None]) -> None:
    results[role.name] = role.terminate(cap)


def sigterm_trials(suite: Suite, trials: int, *, parallel: int = 5, grace: float = 10.0,
                   cap: float = 12.0) -> list[str]:
    """Web started, 50 sockets opened on it, SIGTERM; how long until it exits. ``parallel``
    trials at a time, each on a web role of its own (a hang is a hang, whatever runs beside
    it). Returns the figures."""
    from bench.chaos.wsclients import Held

    times: list[float | None] = []
    codes: dict[Any, int] = {}
    skipped: list[str] = []
    while len(times) + len(skipped) < trials:
        batch = min(parallel, trials - len(times) - len(skipped))
        webs = [suite.stack.start_trial_web() for _ in range(batch)]
        ready = []
        for role, port in webs:
            if not suite.stack.wait_web(120, port):
                skipped.append(f"{role.name} did not start")
                role.terminate(5, group=True)
                continue
            held = Held("127.0.0.1", port, suite.session, suite.slugs).start()
            ready.append((role, held))
        for role, held in list(ready):
            if not held.connected.wait(60) or held.failed:
                skipped.append(f"{role.name}: sockets did not open ({held.failed})")
                role.terminate(5, group=True)
                ready.remove((role, held))
        results: dict[str, float | None] = {}
        threads = [threading.Thread(target=_terminate_into, args=(role, cap, results))
                   for role, _held in ready]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(cap + 30)
        for role, held in ready:
            times.append(results.get(role.name))
            held.join(10)
            for code, n in held.codes.items():
                codes[code] = codes.get(code, 0) + n
    within = [t for t in times if t is not None and t <= grace]
    done = [t for t in times if t is not None]
    spread = (f"; exit times min {min(done):.1f} s, median {statistics.median(done):.1f} s, "
              f"max {max(done):.1f} s" if done else "")
    hung = sum(1 for t in times if t is None)
    figures = [f"web exit within {grace:.0f} s of SIGTERM (50 sockets open): {len(within)} of "
               f"{len(times)}{spread}" + (f"; {hung} still running after {cap:.0f} s (killed)"
                                          if hung else ""),
               "trial close codes: " + (", ".join(f"{c}×{n}" for c, n in sorted(
                   codes.items(), key=lambda kv: str(kv[0]))) or "none")]
    if skipped:
        figures.append(f"trials not run: {'; '.join(skipped)}")
    return figures

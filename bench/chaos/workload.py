"""The workload, through the REST API as a client would drive it: per fault, 10 creates, 10
scales and 5 deletes, each write with an ``Idempotency-Key`` and retried with the same key on a
5xx, a 429 or a dropped connection; plus a reader that keeps loading the API list, the cluster
page and the page's poll URL, as people with the page open do.

Every answer is recorded (status, or ``conn`` / ``timeout`` when there was none) with the
instant it came, so a fault's table can say which requests failed and how.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.chaos.checks import TERMINAL, Intent
from bench.chaos.roles import now

REQUEST_TIMEOUT = 30.0


@dataclass
class Answer:
    at: float
    who: str  # "write", "read", "page", "probe", "browser"
    method: str
    path: str
    outcome: str  # "201", "500", "conn", "timeout"


class Recorder:
    """Every answer the suite got from the web role, in order."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self._lock = threading.Lock()

    def add(self, who: str, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.answers.append(Answer(now(), who, method, path, outcome))

    def between(self, start: float, end: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if start <= a.at <= end]


def is_failure(outcome: str) -> bool:
    """The "0 × 500" rule: a 5xx other than 503 (503 with Retry-After is the wanted answer
    while a dependency is down)."""
    return outcome.isdigit() and int(outcome) >= 500 and outcome != "503"


def summary(answers: list[Answer]) -> Counter:
    return Counter(a.outcome for a in answers)


def endpoint(path: str) -> str:
    """``/api/v1/tenants/chaos-x/clusters/c3/`` → ``/api/v1/tenants/…/clusters/{name}/``."""
    path = re.sub(r"/(tenants|t|ws/t)/[^/]+/", r"/\1/…/", path.split("?")[0])
    path = re.sub(r"/clusters/c\d+/", "/clusters/{name}/", path)
    return re.sub(r"/\d+/", "/{id}/", path)


def failures_by_endpoint(answers: list[Answer], limit: int = 6) -> list[str]:
    """The answers that were not a success, grouped: ``12 × 500 GET /t/…/clusters/ (page)``."""
    counts = Counter((a.outcome, a.method, endpoint(a.path), a.who) for a in answers
                     if not a.outcome.isdigit() or int(a.outcome) >= 400)
    return [f"{n} × {outcome} {method} {path} ({who})"
            for (outcome, method, path, who), n in counts.most_common(limit)]


class Api:
    """A token client that records every answer and retries what may be retried."""

    def __init__(self, base: str, token: str, recorder: Recorder, who: str = "write",
                 stopping: threading.Event | None = None) -> None:
        self.base, self.recorder, self.who = base.rstrip("/"), recorder, who
        self.stopping = stopping or threading.Event()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def once(self, method: str, path: str, *, who: str | None = None, **kwargs: Any
             ) -> requests.Response | None:
        url = path if path.startswith("http") else self.base + path
        try:
            response = self.session.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.Timeout:
            self.recorder.add(who or self.who, method, path, "timeout")
            return None
        except requests.RequestException:
            self.recorder.add(who or self.who, method, path, "conn")
            return None
        self.recorder.add(who or self.who, method, path, str(response.status_code))
        return response

    def retried(self, method: str, path: str, *, deadline: float, key: str | None = None,
                **kwargs: Any) -> requests.Response | None:
        """Until an answer that is not worth retrying, or ``deadline`` (suite time): then None.
        A write keeps its Idempotency-Key across the retries."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if key:
            headers["Idempotency-Key"] = key
        attempt = 0
        while True:
            response = self.once(method, path, headers=headers, **kwargs)
            retry = response is None or response.status_code >= 500 \
                or response.status_code == 429 \
                or (response.status_code == 409
                    and "idempotency_in_progress" in response.text)
            if not retry:
                return response
            if now() >= deadline or self.stopping.is_set():
                return None
            attempt += 1
            wait = min(4.0, 0.25 * 2 ** min(attempt, 5))
            if response is not None and response.headers.get("Retry-After", "").isdigit():
                wait = min(10.0, float(response.headers["Retry-After"]))
            self.stopping.wait(wait)


def spec(name: str) -> dict[str, Any]:
    return {"name": name, "version": "v1.34",
            "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                             "max_replicas": 2, "roles": ["ingress-nginx"]}]}


@dataclass
class ClusterScript:
    """One cluster's life in the workload: create, scale, and for some, delete."""

    index: int
    delete: bool
    steps: list[str] = field(default_factory=list)  # what happened, in words
    gave_up: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class Workload:
    """10 clusters in one tenant, each run by a thread of its own: create → wait → scale →
    wait → (5 of them) delete → wait. The creates are spread over ``stagger`` seconds each, so
    some land before a fault, some during it and some after."""

    def __init__(self, base: str, token: str, slug: str, recorder: Recorder, *,
                 clusters: int = 10, deletes: int = 5, stagger: float = 0.8,
                 request_deadline: float = 240.0, operation_deadline: float = 420.0) -> None:
        self.base, self.token, self.slug, self.recorder = base, token, slug, recorder
        self.scripts = [ClusterScript(i, i < deletes) for i in range(clusters)]
        self.stagger = stagger
        self.request_deadline, self.operation_deadline = request_deadline, operation_deadline
        self.intents: list[Intent] = []
        self.outcomes: Counter = Counter()  # "create succeeded", "scale failed", ...
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.started_at = 0.0
        self.finished_at: float | None = None

    @property
    def clusters_path(self) -> str:
        return f"/api/v1/tenants/{self.slug}/clusters/"

    def start(self) -> Workload:
        self.started_at = now()
        for script in self.scripts:
            thread = threading.Thread(target=self._run, args=(script,), daemon=True,
                                      name=f"workload-{self.slug}-{script.index}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop waiting (the suite gave up on this fault): every thread ends soon."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def done(self) -> bool:
        finished = bool(self._threads) and not any(t.is_alive() for t in self._threads)
        if finished and self.finished_at is None:
            self.finished_at = now()
        return finished

    def join(self, until: float) -> bool:
        for thread in self._threads:
            thread.join(max(0.0, until - now()))
        done = not any(t.is_alive() for t in self._threads)
        if done and self.finished_at is None:
            self.finished_at = now()
        return done

    def _accepted(self, kind: str, name: str, key: str, body: dict[str, Any]) -> int | None:
        op = body.get("current_operation") if kind == "create" else body
        op_id = (op or {}).get("id")
        with self._lock:
            self.intents.append(Intent(kind, name, key, op_id))
        return op_id

    def _write(self, script: ClusterScript, kind: str, method: str, path: str, name: str,
               expected: int, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        api = Api(self.base, self.token, self.recorder, stopping=self.stopping)
        key = f"{self.slug}-{name}-{kind}"
        response = api.retried(method, path, deadline=now() + self.request_deadline, key=key,
                               json=body)
        if response is None:
            script.gave_up.append(kind)
            return None
        if response.status_code != expected:
            script.refused.append(f"{kind} {response.status_code}: {response.text[:160]}")
            return None
        payload = response.json()
        op_id = self._accepted(kind, name, key, payload)
        return {"operation": op_id, **payload}

    def _wait(self, script: ClusterScript, kind: str, op_id: int | None) -> str:
        """Poll the operation until it ends; its final state ("lost" if it cannot be read)."""
        if op_id is None:
            return "unknown"
        api = Api(self.base, self.token, self.recorder, who="read", stopping=self.stopping)
        path = f"/api/v1/tenants/{self.slug}/operations/{op_id}/"
        deadline = now() + self.operation_deadline
        while now() < deadline and not self.stopping.is_set():
            response = api.retried("GET", path, deadline=deadline)
            if response is not None and response.status_code == 200:
                state = response.json().get("state")
                if state in TERMINAL:
                    with self._lock:
                        self.outcomes[f"{kind} {state}"] += 1
                    return state
            elif response is not None:
                script.refused.append(f"read {kind} operation {response.status_code}")
                return "unreadable"
            self.stopping.wait(1.0)
        with self._lock:
            self.outcomes[f"{kind} not finished"] += 1
        return "not finished"

    def _run(self, script: ClusterScript) -> None:
        if self.stopping.wait(script.index * self.stagger):
            return
        name = f"c{script.index}"
        created = self._write(script, "create", "POST", self.clusters_path, name, 201,
                              spec(name))
        if created is None or self._wait(script, "create", created["operation"]) != "succeeded":
            return
        scaled = self._write(script, "scale", "PATCH",
                             f"{self.clusters_path}{name}/node-groups/md0/", name, 202,
                             {"min_replicas": 2, "max_replicas": 3})
        if scaled is not None:
            self._wait(script, "scale", scaled["operation"])
        if script.delete:
            deleted = self._write(script, "delete", "DELETE", f"{self.clusters_path}{name}/",
                                  name, 202)
            if deleted is not None:
                self._wait(script, "delete", deleted["operation"])

    def gave_up(self) -> list[str]:
        return [f"c{s.index} {kind}" for s in self.scripts for kind in s.gave_up]

    def refused(self) -> list[str]:
        return [f"c{s.index} {what}" for s in self.scripts for what in s.refused]


class Reader:
    """Someone with the pages open: the API's cluster list, the cluster page and the URL the
    page polls while its socket is down, one after the other, about once a second each."""

    def __init__(self, base: str, token: str, session: str, slug: str,
                 recorder: Recorder) -> None:
        self.api = Api(base, token, recorder, who="read")
        self.pages = requests.Session()
        self.pages.cookies.set("sessionid", session, domain="127.0.0.1", path="/")
        self.base, self.slug, self.recorder = base.rstrip("/"), slug, recorder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def page(self, path: str, **headers: str) -> int | None:
        try:
            response = self.pages.get(self.base + path, timeout=REQUEST_TIMEOUT,
                                      headers=headers, allow_redirects=False)
        except requests.Timeout:
            self.recorder.add("page", "GET", path, "timeout")
            return None
        except requests.RequestException:
            self.recorder.add("page", "GET", path, "conn")
            return None
        self.recorder.add("page", "GET", path, str(response.status_code))
        return response.status_code

    def _run(self) -> None:
        while not self._stop.is_set():
            self.api.once("GET", f"/api/v1/tenants/{self.slug}/clusters/")
            self.page(f"/t/{self.slug}/clusters/")
            self.page(f"/t/{self.slug}/clusters/-/live/", **{"HX-Request": "true"})
            self._stop.wait(1.0)

    def start(self) -> Reader:
        self._thread = threading.Thread(target=self._run, daemon=True, name="reader")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT + 5)

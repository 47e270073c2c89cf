"""Engine fixtures: the portal pointed at an in-process simulated platform, and a task outbox.

Tests never patch the gateway: every call goes through the real ``kubernetes`` client to the
simulator over loopback. What they do replace is Celery's *delivery*: ``task_outbox`` records
what the engine enqueues, so a test runs each task itself, in order, against a ManualClock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from clusters import options, platform_quota, schema
from cozystack.gateway import Gateway, get_gateway, reset_gateway
from cozystack.simulator import SimulatedPlatform

NS = "tenant-acme"


@pytest.fixture
def platform(simulated_platform: SimulatedPlatform, settings) -> Iterator[SimulatedPlatform]:
    """The simulated management cluster, wired as *the* platform of the portal.

    The schema cache lives in a private in-memory cache, so tests never share it with other
    processes, and the channel layer is in-memory (nothing listens in these tests).
    """
    settings.PLATFORM_KUBECONFIG = str(simulated_platform.kubeconfig_path)
    settings.PLATFORM_IN_CLUSTER = False
    settings.PLATFORM_REQUEST_TIMEOUT = 5
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "clusters-tests"}}
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.OPERATION_POLL_SECONDS = 0.0
    reset_gateway()
    schema.forget()
    options.forget_all()
    platform_quota.forget_all()
    yield simulated_platform
    reset_gateway()


@pytest.fixture
def gateway(platform: SimulatedPlatform) -> Gateway:
    return get_gateway()


@dataclass
class Queued:
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    countdown: float | None


@dataclass
class Outbox:
    """What the engine handed to Celery, in order; ``run()`` executes it in this process."""

    queued: list[Queued] = field(default_factory=list)

    def names(self) -> list[str]:
        return [q.name for q in self.queued]

    def take(self, name: str | None = None) -> list[Queued]:
        taken = [q for q in self.queued if name is None or q.name == name]
        self.queued = [q for q in self.queued if q not in taken]
        return taken

    def run(self, name: str | None = None) -> int:
        """Run every queued task (optionally only ``name``); tasks they enqueue wait."""
        from clusters import tasks

        functions: dict[str, Callable[..., Any]] = {
            "clusters.apply_operation": tasks.apply_operation.run,
            "clusters.poll_operation": tasks.poll_operation.run,
            "clusters.resync": tasks.resync.run,
        }
        batch = self.take(name)
        for item in batch:
            functions[item.name](*item.args, **item.kwargs)
        return len(batch)

    def clear(self) -> None:
        self.queued.clear()


@pytest.fixture
def task_outbox(monkeypatch) -> Outbox:
    """Record ``delay``/``apply_async`` of the engine's tasks instead of publishing them."""
    from clusters import tasks

    outbox = Outbox()
    for task in (tasks.apply_operation, tasks.poll_operation, tasks.resync):
        def record(args=None, kwargs=None, *, _name=task.name, countdown=None, **options):
            outbox.queued.append(Queued(_name, tuple(args or ()), dict(kwargs or {}), countdown))

        monkeypatch.setattr(task, "apply_async", record)
    return outbox


def replace_group(spec: Any, name: str, **changes: Any) -> Any:
    groups = tuple(dataclasses.replace(g, **changes) if g.name == name else g
                   for g in spec.node_groups)
    return dataclasses.replace(spec, node_groups=groups)


def point_portal_at(platform: SimulatedPlatform, settings) -> None:
    """Make ``platform`` the portal's platform (a test that needs a differently built one)."""
    settings.PLATFORM_KUBECONFIG = str(platform.kubeconfig_path)
    reset_gateway()
    schema.forget()
    options.forget_all()
    platform_quota.forget_all()


def group(name: str = "md0", *, instance_type: str = "u1.large", min_replicas: int = 1,
          max_replicas: int = 3, disk: int = 30, roles: tuple[str, ...] = ("ingress-nginx",),
          gpus: tuple[str, ...] = ()) -> Any:
    from cozystack.specs import NodeGroupSpec

    return NodeGroupSpec(name=name, instance_type=instance_type, min_replicas=min_replicas,
                         max_replicas=max_replicas, disk_gib=disk, roles=roles,
                         gpus=gpus)


def cluster_spec(name: str = "demo", *, version: str = "v1.34", groups: tuple[Any, ...] = (),
                 addons: tuple[Any, ...] = ()) -> Any:
    from cozystack.specs import ClusterSpec

    return ClusterSpec(name=name, namespace=NS, version=version,
                       node_groups=groups or (group(),), addons=addons)


@dataclass
class Engine:
    """The portal's engine driven step by step: actions, then each queued task, then the clock."""

    platform: SimulatedPlatform
    outbox: Outbox
    ctx: Any
    actor: Any
    capture: Any  # pytest-django's django_capture_on_commit_callbacks
    pushed: list[int]

    def act(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an action as a request would: its on-commit effects (enqueue, push) happen."""
        with self.capture(execute=True):
            return action(self.actor, self.ctx, *args, **kwargs)

    def create(self, spec: Any = None) -> Any:
        from clusters import actions

        return self.act(actions.do_create_cluster, spec or cluster_spec())

    def operation(self, cluster: Any) -> Any:
        from clusters.models import Operation

        return Operation.objects.filter(cluster_id=cluster.pk).order_by("-created_at",
                                                                         "-pk").first()

    def settle(self, cluster: Any, *, seconds: float = 20.0, step: float = 0.5) -> Any:
        """Run queued tasks and move the platform clock until the cluster's operation ends."""
        operation = self.operation(cluster)
        waited = 0.0
        while True:
            self.outbox.run()
            operation.refresh_from_db()
            if not operation.is_active or waited >= seconds:
                break
            self.platform.advance(step)
            waited += step
        self.outbox.clear()
        cluster.refresh_from_db()
        return operation

    def observe(self) -> int:
        """What the resync does: list the platform and apply every difference."""
        from clusters import watcher

        return watcher.sync_all(get_gateway())

    def writes(self) -> list[str]:
        return [f"{r.method} {r.status}" for r in self.platform.requests()
                if r.method in ("POST", "PUT", "PATCH", "DELETE") and "kuberneteses" in r.path]


@pytest.fixture
def pushed(monkeypatch) -> list[int]:
    """Cluster ids pushed to live pages, in order (rendering is the UI's business)."""
    from clusters import events

    sent: list[int] = []
    monkeypatch.setattr(events, "_sink", sent.append)
    return sent


@pytest.fixture
def engine(platform, task_outbox, tenant, owner, pushed,
           django_capture_on_commit_callbacks) -> Engine:
    from portal.audit import Actor
    from portal.models import Membership
    from portal.tenancy import TenantContext

    membership = Membership.objects.get(tenant=tenant, user=owner)
    ctx = TenantContext(tenant, membership.role, membership)
    return Engine(platform, task_outbox, ctx, Actor(user=owner),
                  django_capture_on_commit_callbacks, pushed)

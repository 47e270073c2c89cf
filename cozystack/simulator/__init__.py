"""Simulated Cozystack management cluster, v1.3.6 or v1.6.2 (no Django; standard library and
PyYAML for the charts' values.yaml).

from cozystack.simulator import Fault, ManualClock, SimulatedPlatform

platform = SimulatedPlatform(clock=ManualClock(), release="1.3.6").start()
platform.kubeconfig(tmp_path / "kubeconfig")   # for kubernetes.config.new_client_from_config
...                                              # drive it with the real kubernetes client
platform.advance(2.0)                            # ManualClock: control plane up, nodes ready
platform.upgrade("1.6.2")                        # a live platform upgrade (from 1.3.6)
platform.stop()
"""

from __future__ import annotations

from .clock import ManualClock, RealClock
from .errors import ApiError
from .faults import Fault
from .nodes import Timing
from .platform import SimulatedPlatform
from .releases import DEFAULT_RELEASE, RELEASES
from .server import RequestRecord

__all__ = [
    "DEFAULT_RELEASE",
    "RELEASES",
    "ApiError",
    "Fault",
    "ManualClock",
    "RealClock",
    "RequestRecord",
    "SimulatedPlatform",
    "Timing",
]

"""Simulated Cozystack v1.3.6 management cluster (standard library only, no Django).

from cozystack.simulator import Fault, ManualClock, SimulatedPlatform

platform = SimulatedPlatform(clock=ManualClock(), schema_path=...).start()
platform.kubeconfig(tmp_path / "kubeconfig")   # for kubernetes.config.new_client_from_config
...                                              # drive it with the real kubernetes client
platform.advance(2.0)                            # ManualClock: control plane up, nodes ready
platform.stop()
"""

from __future__ import annotations

from .clock import ManualClock, RealClock
from .errors import ApiError
from .faults import Fault
from .nodes import Timing
from .platform import SimulatedPlatform
from .server import RequestRecord

__all__ = [
    "ApiError",
    "Fault",
    "ManualClock",
    "RealClock",
    "RequestRecord",
    "SimulatedPlatform",
    "Timing",
]

"""Gateway overhead: one ``get_cluster`` through the gateway (the real ``kubernetes`` client)
versus one raw HTTP GET of the same object, against the same simulated platform, in one run.

    .venv/bin/python bench/bench_gateway.py [--requests 2000] [--rounds 5]

The simulator runs in its own process (``manage.py simulate_platform``), so its work does not
share this process's interpreter. Rounds alternate raw / urllib3 / gateway to spread any drift
of the machine over all three. Prints the medians and the ratio (goal: under 1.5). Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_bench")
NS, NAME = "tenant-bench", "demo"


def start_platform(workdir: Path) -> tuple[subprocess.Popen, str, Path]:
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_platform", "--port", "0", "--kubeconfig-out",
         str(kubeconfig), "--ready-after", "0.1"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found.group(1), kubeconfig
    raise RuntimeError("the simulated platform did not start")


def per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    proc, url, kubeconfig = start_platform(workdir)
    try:
        import django

        os.environ["KUBECONFIG"] = str(kubeconfig)
        django.setup()
        import urllib3

        from cozystack.gateway import get_gateway

        gateway = get_gateway()
        gateway.create_cluster({
            "apiVersion": "apps.cozystack.io/v1alpha1", "kind": "Kubernetes",
            "metadata": {"name": NAME, "namespace": NS,
                         "labels": {"app.kubernetes.io/managed-by": "kube-portal"}},
            "spec": {"version": "v1.34"}})
        token = gateway.api_client.configuration.api_key["BearerToken"]
        headers = {"Authorization": token if token.startswith("Bearer") else f"Bearer {token}",
                   "Accept": "application/json"}
        path = f"/apis/apps.cozystack.io/v1alpha1/namespaces/{NS}/kuberneteses/{NAME}"
        host, port = url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port))
        pool = urllib3.PoolManager()

        def raw() -> object:
            conn.request("GET", path, headers=headers)
            return json.loads(conn.getresponse().read())

        def pooled() -> object:
            return json.loads(pool.request("GET", url + path, headers=headers).data)

        def through_gateway() -> object:
            return gateway.get_cluster(NS, NAME)

        assert raw()["metadata"]["name"] == through_gateway()["metadata"]["name"] == NAME
        for fn in (raw, pooled, through_gateway):
            per_call(fn, 200)  # warm up connections and caches
        samples: dict[str, list[float]] = {"raw": [], "urllib3": [], "gateway": []}
        for _ in range(args.rounds):
            samples["raw"].append(per_call(raw, args.requests))
            samples["urllib3"].append(per_call(pooled, args.requests))
            samples["gateway"].append(per_call(through_gateway, args.requests))
        med = {k: statistics.median(v) for k, v in samples.items()}
        best = {k: min(v) for k, v in samples.items()}
        print(f"one GET of a Kubernetes object, {args.rounds} rounds × {args.requests} "
              f"(median / best round):")
        print(f"  raw http.client (keep-alive): {med['raw']:.0f} / {best['raw']:.0f} µs")
        print(f"  raw urllib3 PoolManager:      {med['urllib3']:.0f} / {best['urllib3']:.0f} µs")
        print(f"  gateway.get_cluster:          {med['gateway']:.0f} / {best['gateway']:.0f} µs")
        for label, figures in (("median", med), ("best round", best)):
            print(f"{label}: gateway / raw http.client = {figures['gateway'] / figures['raw']:.2f}"
                  f" (goal < 1.5); gateway / raw urllib3 = "
                  f"{figures['gateway'] / figures['urllib3']:.2f}; client-side overhead ≈ "
                  f"{figures['gateway'] - figures['raw']:.0f} µs per call")
        ratio = med["gateway"] / med["raw"]
        print(f"goal: gateway / raw GET < 1.5 (medians): {ratio:.2f} — "
              f"{'met' if ratio < 1.5 else 'NOT met'}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()

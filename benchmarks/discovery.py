"""Discovery cost: engine requests and wall time per sweep, against the loopback engine simulator.

Target: the number of engine requests of one discovery depends on the number of VMs divided by the page
size, never on one call per VM: the pages, plus the lists the lean discovery joins (clusters, data centers,
hosts, instance types) and up to ``engine_concurrency`` pages sent past the end. The baseline is what a naive
client does: list the VMs, then one ``reporteddevices`` call per VM
(the old in-tree provider's way of getting addresses).

    python benchmarks/discovery.py [--sizes 100,1000,5000] [--page-size 100] [--write-results]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from record import record  # benchmarks/record.py: --write-results

from ovirt_cloudprovider.core.settings import ConnectionConfig
from ovirt_cloudprovider.engine.client import EngineClient
from ovirt_cloudprovider.engine.paging import LISTS
from ovirt_cloudprovider.simulators.engine import EngineSimulator, generate_fleet


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engine-concurrency", type=int, default=2)
    ap.add_argument("--write-results", action="store_true", help="also write benchmarks/results/discovery.json")
    args = ap.parse_args()
    figures: dict[str, dict[str, float]] = {}
    print(f"{'vms':>6} {'requests':>9} {'expected':>9} {'naive':>7} {'ratio':>7} {'median_s':>9} {'vms/s':>8}")
    ok = True
    for n in (int(s) for s in args.sizes.split(",")):
        with EngineSimulator(generate_fleet(n, seed=1)) as sim:
            conn = ConnectionConfig(uri=sim.url, username=sim.username, password=sim.password,
                                    ca_file=sim.ca_file, timeout=60)
            client = EngineClient(conn, page_size=args.page_size, engine_concurrency=args.engine_concurrency)
            try:
                client.discover("tag=kubernetes")  # warm up: SSO login, TLS session
                times, requests = [], 0
                for _ in range(args.repeat):
                    sim.reset_requests()
                    start = time.perf_counter()
                    snap = client.discover("tag=kubernetes")
                    times.append(time.perf_counter() - start)
                    requests = sim.request_count()
                    assert len(snap.vms) == n, (len(snap.vms), n)
            finally:
                client.close()
        expected = math.floor(n / args.page_size) + 1 + len(LISTS) + args.engine_concurrency
        naive = n + 1
        median = statistics.median(times)
        ok = ok and requests <= expected
        figures[str(n)] = {"engine_requests": requests, "expected": expected, "naive": naive, "median_s": median}
        print(f"{n:>6} {requests:>9} {expected:>9} {naive:>7} {naive / requests:>6.0f}x {median:>9.3f} "
              f"{n / median:>8.0f}")
    print("result:", "OK: requests <= floor(VMs / page size) + 1 + lists + concurrency" if ok
          else "FAIL: more requests than pages")
    if args.write_results:
        record("discovery", {"page_size": args.page_size, "engine_concurrency": args.engine_concurrency,
                             "ok": ok, "sizes": figures})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

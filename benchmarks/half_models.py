"""HALF Table I, modelled: three HALF-space candidates chosen for low power, low energy and
high throughput, with latency, power and energy under minimal and maximal unrolling.

The candidates are picked from seeded random architectures of the HALF space by the HALF
model itself (min unrolling power; min unrolling energy; max unrolling throughput). Without
a quality constraint a trivial net (pool, pool, one tiny conv) wins every objective, so as
a stand-in for HALF's accuracy limits only candidates of HALF Fig. 4's size are eligible:
at least 3 separable convolutions and 400 to 1,500 parameters (stated, not trained).
Every figure is ESTIMATED by device_agent/fpga/half.py with the board data file's constants.

    .venv/bin/python benchmarks/half_models.py [--board ultra96-v2] [--samples 3000]
"""

from __future__ import annotations

import argparse

from device_agent.fpga.half import estimate
from host.spaces.half import HalfSpace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="ultra96-v2")
    ap.add_argument("--samples", type=int, default=20000)
    args = ap.parse_args()
    space = HalfSpace()
    from host.spaces.half import SepConv

    archs = [a for a in space.sample(args.samples, seed=0)
             if sum(isinstance(layer, SepConv) for layer in a.layers) >= 3
             and 400 <= sum(layer.params for layer in space.hw_layers(a)) <= 1500]
    est = {a: (estimate(space.hw_layers(a), args.board, "min"),
               estimate(space.hw_layers(a), args.board, "max")) for a in archs}
    picks = {
        "low P, min unroll": min(archs, key=lambda a: est[a][0].power.value),
        "low E, min unroll": min(archs, key=lambda a: est[a][0].energy.value),
        "high throughput, max unroll": min(archs, key=lambda a: est[a][1].latency.value),
    }
    print(f"HALF models on {args.board} (all figures ESTIMATED), {len(archs)} candidates")
    print(f"{'NAS objective':30s} {'impl':4s} {'thru [1/s]':>11s} {'P [W]':>9s} "
          f"{'P+board [W]':>11s} {'E [uJ]':>10s} {'alpha':>6s} params")
    for label, a in picks.items():
        for e in est[a]:
            params = sum(layer.params for layer in space.hw_layers(a))
            print(f"{label:30s} {e.unroll_name:4s} {e.throughput.value:11.3e} "
                  f"{e.power.value:9.4f} {e.platform_power.value:11.3f} "
                  f"{e.energy.value * 1e6:10.4f} {e.alpha_total:6d} {params}")
    for label, a in picks.items():
        print(f"  {label}: {a.key()}")
    print("best per column (which candidate wins):")
    for col, key in (("P min", lambda a: est[a][0].power.value),
                     ("E min", lambda a: est[a][0].energy.value),
                     ("E max", lambda a: est[a][1].energy.value),
                     ("latency max", lambda a: est[a][1].latency.value)):
        print(f"  {col:12s} -> {min(picks, key=lambda k: key(picks[k]))}")


if __name__ == "__main__":
    main()

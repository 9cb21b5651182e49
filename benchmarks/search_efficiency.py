"""Search efficiency on the tabular benchmark: trainings needed to reach 98% of the
exhaustive front's hypervolume (f1_macro on validation vs int8 storage), over 20 seeds.

BioNetExplorer reports its GAs need on average 9x fewer trainings than exhaustive search.
Each strategy runs with the paper's settings (crossover 0.4, mutation 0.11) and a
population of 6 (the count of trainings grows one generation at a time), for up to 30
generations; random search samples without replacement one
architecture at a time. "Trainings" are distinct architectures looked up in the table.

    .venv/bin/python benchmarks/search_efficiency.py [--table benchmarks/tabular/bionet_nva.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from host.search.config import parse_config
from host.search.runner import STORE_NAME, run_search
from host.store.sqlite import RunStore

REPO = Path(__file__).resolve().parent.parent
STRATEGIES = ("roulette", "tournament", "nsga2", "spea2", "random")


def config(table: Path, out: Path, strategy: str, seed: int, generations: int,
           population: int, bounds: dict | None = None) -> dict:
    doc = {
        "space": {"name": "bionet", "bounds": bounds or {}},
        "run": {"name": f"{strategy}-{seed}", "seed": seed, "out_dir": str(out)},
        "data": {"preset": "normal-vs-anomalous"},
        "strategy": {"name": strategy, "population": population, "generations": generations},
        "objectives": [{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"}],
        "tabular": str(table),
    }
    if strategy == "random":
        doc["strategy"].update(population=1, random_fraction=1.0)
    if strategy == "exhaustive":
        doc["strategy"].update(population=200)
    return doc


def trainings_to_target(out: Path, run_id: str, target: float) -> int | None:
    for g in RunStore(out / STORE_NAME).generations(run_id):
        if g["hypervolume"] >= target:
            return int(g["trainings"])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path,
                        default=REPO / "benchmarks" / "tabular" / "bionet_nva.json")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--max-blocks", type=int, default=None,
                        help="search only networks of at most this many blocks (a partial table)")
    args = parser.parse_args()
    bounds = {"max_blocks": args.max_blocks} if args.max_blocks is not None else {}
    out = Path(tempfile.mkdtemp(prefix="hilnas-efficiency-"))
    exhaustive = run_search(parse_config(config(args.table, out, "exhaustive", 0, 1, 1, bounds)),
                            progress=False, report=False)
    target = args.target * exhaustive.hypervolume
    print(f"table: {args.table} ({exhaustive.trainings} distinct architectures)")
    print(f"exhaustive: {exhaustive.trainings} trainings, hypervolume {exhaustive.hypervolume:.4f};"
          f" target {args.target:.0%} = {target:.4f}")
    print(f"{'strategy':<11}{'reached':>9}{'mean':>8}{'median':>8}{'min':>6}{'max':>6}"
          f"{'  x fewer than exhaustive (mean)':>33}")
    best = 0.0
    for strategy in STRATEGIES:
        needed = []
        for seed in range(args.seeds):
            gens = args.generations if strategy != "random" else exhaustive.trainings
            result = run_search(parse_config(config(args.table, out, strategy, seed, gens,
                                                    args.population, bounds)),
                                progress=False, report=False)
            needed.append(trainings_to_target(out, result.run_id, target))
        reached = [n for n in needed if n is not None]
        if not reached:
            print(f"{strategy:<11}{0:>6}/{args.seeds}   never reached")
            continue
        mean = statistics.mean(reached)
        ratio = exhaustive.trainings / mean
        best = max(best, ratio if len(reached) == args.seeds else 0)
        print(f"{strategy:<11}{len(reached):>6}/{args.seeds}{mean:>8.1f}{statistics.median(reached):>8.1f}"
              f"{min(reached):>6}{max(reached):>6}{ratio:>33.1f}")
    print(f"best strategy reaching the target in every seed: {best:.1f}x fewer trainings than "
          f"exhaustive (target 9x): {'met' if best >= 9 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

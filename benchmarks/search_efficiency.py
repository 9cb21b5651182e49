"""Search efficiency on the tabular benchmark: trainings needed to reach 98% of the
exhaustive front's hypervolume (f1_macro on validation vs int8 storage), over 20 seeds.

BioNetExplorer reports its GAs need on average 9x fewer trainings than exhaustive search.
Each GA runs with the paper's settings (crossover 0.4, mutation 0.11) and a population of
6 (the count of trainings grows one generation at a time), for up to 30 generations, three
times:
as the paper's GA (duplicate offspring kept) and with strategy.duplicates = "remutate"
(suffix "+new"), and once more with offspring pre-screened by the Gaussian-process surrogate
(suffix "+gp": strategy.surrogate = "gp", duplicates re-mutated). The Bayesian strategy
trains `--batch` networks per generation (default 1, its default with one training
worker). Random search samples without replacement one architecture at a time.
"Trainings" are distinct architectures looked up in the table.

Two measures per strategy, both counted one training at a time, in the order the strategy
asked for its candidates:
- "hv98": until the front's hypervolume reaches 98% of the exhaustive front's;
- "optimum": until the table's best weighted-cost network (alpha = beta = 0.5, the
  paper's equal weights; H = int8 storage / the space's largest) has been trained, the
  paper's own view of a GA's result.

    .venv/bin/python benchmarks/search_efficiency.py [--table benchmarks/tabular/bionet_nva.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from host.search.config import parse_config
from host.search.pareto import hypervolume, pareto_front
from host.search.runner import STORE_NAME, run_search
from host.store.sqlite import RunStore

REPO = Path(__file__).resolve().parent.parent
GAS = ("roulette", "tournament", "nsga2", "spea2")
STRATEGIES = (*GAS, *(f"{g}+new" for g in GAS), *(f"{g}+gp" for g in GAS), "bayesian",
              "random")


def config(table: Path, out: Path, strategy: str, seed: int, generations: int,
           population: int, bounds: dict | None = None, encoding: str = "binary",
           pool: int = 4, batch: int = 1) -> dict:
    name, _, variant = strategy.partition("+")
    doc = {
        "space": {"name": "bionet", **(bounds or {})},
        "run": {"name": f"{name}-{variant or 'paper'}-{seed}", "seed": seed,
                "out_dir": str(out)},
        "data": {"preset": "normal-vs-anomalous"},
        "strategy": {"name": name, "population": population, "generations": generations,
                     "duplicates": "remutate" if variant in ("new", "gp") else "keep",
                "surrogate": "gp" if variant == "gp" else "none", "surrogate_pool": pool,
                     "encoding": encoding},
        "objectives": [{"metric": "f1_macro"}, {"metric": "storage_int8_bytes"}],
        "tabular": str(table),
    }
    if strategy == "random":
        doc["strategy"].update(population=1, random_fraction=1.0)
    if strategy == "bayesian":
        doc["strategy"].update(population=batch)
    if strategy == "exhaustive":
        doc["strategy"].update(population=200)
    return doc


def normalised(e: dict, largest: float) -> list[float]:
    """The runner's normalisation: 1 - F1, and storage over the space's largest."""
    o = e["objectives"]
    return [1 - o["f1_macro"], o["storage_int8_bytes"] / largest]


def trained_in_order(out: Path, run_id: str) -> list[dict]:
    """The run's evaluations of trained networks, each network once, in the order the
    strategy asked for them (generation, then position in the generation)."""
    evs = RunStore(out / STORE_NAME).evaluations(run_id)
    first: dict[str, dict] = {}
    for e in sorted(evs, key=lambda e: (e["generation"], e["idx"])):
        if e["arch_key"] and e["status"] == "ok" and e["arch_key"] not in first:
            first[e["arch_key"]] = e
    return list(first.values())


def trainings_to_target(out: Path, run_id: str, target: float, largest: float) -> int | None:
    """Trainings until the front's hypervolume reaches `target`, counted one training at a
    time (not at the end of a generation, which would round every GA up to a multiple of
    its population)."""
    points: list[list[float]] = []
    for n, e in enumerate(trained_in_order(out, run_id), start=1):
        points.append(normalised(e, largest))
        if hypervolume([points[i] for i in pareto_front(points)]) >= target:
            return n
    return None


def weighted_optimum(out: Path, run_id: str) -> tuple[str, float]:
    """The exhaustive run's network of least 0.5 (1 - F1) + 0.5 storage / max storage."""
    evs = [e for e in RunStore(out / STORE_NAME).evaluations(run_id) if e["status"] == "ok"]
    largest = max(e["objectives"]["storage_int8_bytes"] for e in evs)

    def cost(e: dict) -> float:
        o = e["objectives"]
        return 0.5 * (1 - o["f1_macro"]) + 0.5 * o["storage_int8_bytes"] / largest

    best = min(evs, key=cost)
    return best["arch_key"], cost(best)


def trainings_to_network(out: Path, run_id: str, key: str) -> int | None:
    keys = [e["arch_key"] for e in trained_in_order(out, run_id)]
    return keys.index(key) + 1 if key in keys else None


def summary(needed: list[int | None], exhaustive: int, seeds: int) -> tuple[str, float]:
    """A table cell (reached/seeds, mean, median) and the mean's ratio to exhaustive."""
    reached = [n for n in needed if n is not None]
    if not reached:
        return f"{0:>3}/{seeds:<3}{'never':>17}", 0.0
    mean = statistics.mean(reached)
    ratio = exhaustive / mean
    return (f"{len(reached):>3}/{seeds:<3}{mean:>6.1f}{statistics.median(reached):>6.1f}"
            f"{ratio:>5.1f}x"), (ratio if len(reached) == seeds else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path,
                        default=REPO / "benchmarks" / "tabular" / "bionet_nva.json")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--batch", type=int, default=1,
                        help="networks the bayesian strategy trains per generation")
    parser.add_argument("--surrogate-pool", type=int, default=4,
                        help="offspring bred per offspring trained by the +gp variants")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=STRATEGIES,
                        help="compare only these (default: all)")
    parser.add_argument("--encoding", choices=("binary", "integer"), default="binary",
                        help="the GAs' chromosome (default: the paper's 9-bit binary)")
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
    optimum, optimum_cost = weighted_optimum(out, exhaustive.run_id)
    largest = max(e["objectives"]["storage_int8_bytes"]
                  for e in trained_in_order(out, exhaustive.run_id))
    print(f"weighted-cost optimum (alpha = beta = 0.5): {optimum}, cost {optimum_cost:.4f}")
    print(f"{'strategy':<16}{'hv98: reached mean median vs exh.':>36}"
          f"{'optimum: reached mean median vs exh.':>40}")
    best: dict[str, tuple[float, str]] = {"hv98": (0.0, ""), "optimum": (0.0, "")}
    for strategy in args.strategies:
        to_hv, to_opt = [], []
        for seed in range(args.seeds):
            # The baselines and the Bayesian strategy run until the space is exhausted.
            gens = (args.generations if strategy not in ("random", "bayesian")
                    else exhaustive.trainings)
            result = run_search(parse_config(config(args.table, out, strategy, seed, gens,
                                                    args.population, bounds, args.encoding,
                                                    args.surrogate_pool, args.batch)),
                                progress=False, report=False)
            to_hv.append(trainings_to_target(out, result.run_id, target, largest))
            to_opt.append(trainings_to_network(out, result.run_id, optimum))
        cells = []
        for measure, needed in (("hv98", to_hv), ("optimum", to_opt)):
            cell, ratio = summary(needed, exhaustive.trainings, args.seeds)
            cells.append(cell)
            if ratio > best[measure][0]:
                best[measure] = (ratio, strategy)
        print(f"{strategy:<16}{cells[0]:>36}{cells[1]:>40}")
    for measure, (ratio, strategy) in best.items():
        print(f"{measure}: best strategy reaching it in every seed: {strategy or 'none'}, "
              f"{ratio:.1f}x fewer trainings than exhaustive (target 9x): "
              f"{'met' if ratio >= 9 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

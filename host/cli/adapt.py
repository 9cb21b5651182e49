"""`hilnas adapt MODEL`: adapt a trained model to a device, operator by operator (GOS).

Grassroots Operator Search (host/adapt): the device profiles the model, Algorithm 1 picks
the least efficient operator, an evolutionary search over that operator's instruction graph
finds a faster variant within the quality margin (each candidate fine-tuned, exported to
int8 and run on the device), and the loop repeats up to `--max-layers` operators.

MODEL is a folder written by `hilnas train` (its `model.keras` and `model-int8.tflite`, whose
metadata says the task and data) or a `.keras` file; without such metadata the task's
defaults are used (`--task`, `--input`). The output folder gets the adapted model, the
replacements with their equations and measured effect, and the front (host/adapt/report.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("adapt", help="adapt a trained model to a device by operator "
                       "replacement (Grassroots Operator Search)")
    p.add_argument("model", help="a `hilnas train` output folder, or a .keras file")
    p.add_argument("--task", default="ppg", help="the model's task (default ppg; the "
                   "model's metadata, when there is one, must agree)")
    p.add_argument("--device", default="local",
                   help="where candidates run: local (LiteRT here), local:mcu-emulator "
                   "(the emulated Nano 33 BLE, estimated latency) or grpc://HOST:PORT")
    p.add_argument("--token", help="agent token (default $HILNAS_AGENT_TOKEN)")
    p.add_argument("--data-dir", help="folder holding the task's data (default "
                   "$HILNAS_DATA_DIR)")
    p.add_argument("--input", choices=["spectral", "raw"],
                   help="ppg without metadata: the input the model takes")
    p.add_argument("--out", required=True, help="output folder")
    g = p.add_argument_group("search (defaults: host.adapt.search.AdaptConfig)")
    g.add_argument("--max-layers", type=int, help="operators adapted at most (default 3)")
    g.add_argument("--population", type=int, help="per operator, a multiple of 4 (default 8)")
    g.add_argument("--generations", type=int, help="per operator (default 3)")
    g.add_argument("--n-similar", type=int,
                   help="GOS's N_o: similar operators replaced together (default 1)")
    g.add_argument("--margin", type=float, dest="quality_margin",
                   help="GOS's epsilon in the quality's unit (default 0.5, BPM for ppg)")
    g.add_argument("--epochs", type=int, dest="finetune_epochs",
                   help="fine-tuning epochs per candidate (default 4)")
    g.add_argument("--target-speedup", type=float, help="stop once this much faster")
    g.add_argument("--seed", type=int, help="default 0")
    p.set_defaults(func=run)


def _model_files(path: Path) -> tuple[Path, Path | None]:
    """(the .keras file, a .tflite with the model's metadata or None)."""
    from host.errors import ConfigError

    if path.is_dir():
        keras_path = path / "model.keras"
        folder = path
    else:
        keras_path, folder = path, path.parent
    if not keras_path.is_file():
        raise ConfigError(f"model: {keras_path} does not exist (give a `hilnas train` output "
                          "folder or a .keras file)")
    for name in ("model-int8.tflite", "model-float32.tflite"):
        if (folder / name).is_file():
            return keras_path, folder / name
    return keras_path, None


def load_task(task_name: str, meta: dict[str, Any], data_dir: str | None,
              input_kind: str | None) -> Any:
    """The model's task from its metadata, or the task's defaults (with `--input`)."""
    from host.errors import ConfigError
    from host.tasks import task_class

    cls = task_class(task_name)
    if meta:
        if meta.get("task") not in (None, task_name):
            raise ConfigError(f"--task {task_name}: the model's metadata says it is a "
                              f"{meta.get('task')!r} model")
        return cls.from_metadata(meta, data_dir=data_dir)
    options: dict[str, Any] = {"data_dir": data_dir}
    if input_kind:
        options["input"] = input_kind
    return cls(cls.config_type(**{k: v for k, v in options.items() if v is not None}))


def _write_partial(adapter: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "adapt-partial.json"
    path.write_text(json.dumps({
        "complete": False,
        "steps": [s.to_json() for s in adapter.steps],
        "evaluations": [e.to_json() for e in adapter.evaluations],
    }, indent=2, default=str))
    print(f"stopped: the steps and candidates measured so far are in {path}", flush=True)


def run(args: argparse.Namespace) -> int:
    from host.adapt.model import ChainModel
    from host.adapt.report import test_quality, write_outputs
    from host.adapt.search import AdaptConfig, Adapter
    from host.export.flatbuf import read_metadata
    from host.fleet import check_device_spec, open_device
    from host.train.tfenv import load_keras_model

    check_device_spec(args.device)  # a wrong address fails before any data is loaded
    fields = ("max_layers", "population", "generations", "n_similar", "quality_margin",
              "finetune_epochs", "target_speedup", "seed")
    config = AdaptConfig(**{k: getattr(args, k) for k in fields if getattr(args, k) is not None})
    keras_path, tflite_path = _model_files(Path(args.model))
    meta = read_metadata(tflite_path.read_bytes()) if tflite_path else {}
    task = load_task(args.task, meta, args.data_dir, args.input)
    out = Path(args.out)
    print(f"[1/3] data ({task.name}) and model {keras_path}", flush=True)
    data = task.load()
    model = load_keras_model(keras_path)
    chain = ChainModel.of(model)
    for op in chain.operators:
        if op.skipped:
            print(f"      {op.name}: adapted around ({op.skipped})")
    keep = {k: v for k, v in meta.items() if k not in ("quantization", "adaptation")}
    metadata = {**keep, "task": task.name, "data": task.identity(), "adapted_from": str(keras_path)}
    print(f"[2/3] adapting on {args.device}", flush=True)
    with open_device(args.device, token=args.token, timeout_s=30.0) as device:
        info = device.describe()
        adapter = Adapter(chain, task, data, device, config, metadata=metadata,
                          progress=lambda line: print(line, flush=True))
        try:
            result = adapter.run()
        except BaseException:
            # a device lost mid-run or Ctrl-C: what was measured is kept, then the error
            _write_partial(adapter, out)
            raise
        print("[3/3] test side on the device, writing the outputs", flush=True)
        test = test_quality(result)
        device_text = f"{args.device} ({info.kind}, {info.board or info.name})"
        summary = write_outputs(result, out, extra={"device": device_text, "test": test,
                                                    "device_stand_in": info.is_stand_in})
    q = summary["quality_metric"]
    print(json.dumps({
        "speedup": round(summary["speedup"], 3),
        "latency_us": [summary["base"]["latency_us"], summary["final"]["latency_us"]],
        "latency_source": summary["base"]["latency_source"],
        f"val_{q}": [summary["base"]["quality"], summary["final"]["quality"]],
        f"test_{q}": [test["original"].get(q), test["adapted"].get(q)],
        "params": summary["final"]["model_params"], "seconds": summary["seconds"],
    }))
    print(f"wrote {out}/ (adapted-int8.tflite, adapt.json, adapt.md, front.png)")
    return 0

"""Data Aware NAS in hilnas: the audio task, the data-aware space, the DANAS strategy, and a
real search on FSDD whose front model is then evaluated on a folder of WAV files."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from host.data import EcgDatasetConfig
from host.errors import ConfigError
from host.search.config import StrategyConfig, parse_config
from host.search.strategies.base import Scored, SearchContext
from host.spaces.base import get_space
from host.spaces.data_aware import DataAwareArch, DataAwareSpace
from host.tasks.audio import AudioDatasetConfig, SpokenDigits
from host.tasks.base import Granularity
from host.tasks.ecg import EcgClassification

HOST = [sys.executable, "-m", "host.cli"]
LADDERS: dict[str, Any] = {
    "sample_rates": [8000, 4000, 2000, 1000], "windows_s": [0.5, 1.0],
    "frames_ms": [32.0, 64.0], "n_mels": [20, 40], "n_mfcc": [10, 13], "max_layers": 3,
}


def audio_task(**fields: Any) -> SpokenDigits:
    return SpokenDigits(AudioDatasetConfig(**{"window_s": 0.5, **fields}))


def audio_space(**options: Any) -> DataAwareSpace:
    space = get_space("data_aware", task=audio_task(), **{**LADDERS, **options})
    assert isinstance(space, DataAwareSpace)
    return space


# ------------------------------------------------------------------ configuration errors
def test_bad_granularity_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="upsampling would invent granularity"):
        AudioDatasetConfig(sample_rate=16000)
    with pytest.raises(ConfigError, match="representation: unknown 'cepstrum'"):
        AudioDatasetConfig(representation="cepstrum")
    with pytest.raises(ConfigError, match="unknown key data.rate"):
        SpokenDigits.from_table({"rate": 4000}, seed=0)
    with pytest.raises(ConfigError, match=r"sample_rates: \[16000\] Hz above"):
        get_space("data_aware", task=audio_task(), sample_rates=[16000, 8000])
    ecg = EcgClassification(EcgDatasetConfig(window=64))
    with pytest.raises(ConfigError, match="cannot give \\['mfcc'\\]"):
        get_space("data_aware", task=ecg, representations=["raw", "mfcc"])
    with pytest.raises(ConfigError, match="not bound to a task"):
        get_space("data_aware").genes()


def test_a_granularity_that_gives_no_input_is_not_in_the_space() -> None:
    """A 64 ms frame does not fit a 50 ms window: such genes decode to no network."""
    space = get_space("data_aware", task=audio_task(), windows_s=[0.05, 0.5],
                      frames_ms=[64.0], representations=["spectrogram"])
    arch = DataAwareArch(8000, 0.05, "spectrogram", 64.0, None, None, ((4, 3, "relu"),))
    assert not space.contains(arch)
    genes = space.encode_int(arch)
    assert space.decode_int(genes) is None
    assert all(a.window_s == 0.5 for a in (space.draw(random.Random(i)) for i in range(20)))


# ------------------------------------------------------------------ the space
def test_genes_keys_and_tasks_agree() -> None:
    space = audio_space()
    rng = random.Random(1)
    for _ in range(30):
        arch = space.draw(rng)
        assert space.contains(arch)
        assert space.from_key(arch.key()) == arch
        assert space.decode_int(space.encode_int(arch)) == arch
        task = space.task_for(arch, space._bound())
        g = task.granularity()
        assert (g.sample_rate, g.window_s, g.representation) == (
            arch.sample_rate, arch.window_s, arch.representation)
        assert task.input_spec().length == int(arch.sample_rate * arch.window_s)


def test_input_buffer_counts_samples_at_the_chosen_rate() -> None:
    space = audio_space()
    net = ((8, 3, "relu"),)
    fine = DataAwareArch(8000, 1.0, "raw", None, None, None, net)
    coarse = DataAwareArch(1000, 1.0, "raw", None, None, None, net)
    assert space.costs(fine).input_buffer_bytes == 8000 * 2
    assert space.costs(coarse).input_buffer_bytes == 1000 * 2
    mel = DataAwareArch(1000, 1.0, "mel", 64.0, 20, None, net)
    est = space.estimates(mel)
    assert est["feature_buffer_bytes"] > 0 and est["frontend_macs"] > 0
    assert space.costs(mel).input_buffer_bytes == 1000 * 2 + est["feature_buffer_bytes"]


def test_danas_mutations_change_one_thing_and_stay_in_the_space() -> None:
    space = audio_space()
    rng = random.Random(3)
    changed: set[str] = set()
    for _ in range(300):
        parent = space.draw(rng)
        child = space.mutate(parent, rng)
        assert child != parent and space.contains(child)
        if child.sample_rate != parent.sample_rate:
            changed.add("rate")
            rates = sorted(LADDERS["sample_rates"])
            assert abs(rates.index(child.sample_rate) - rates.index(parent.sample_rate)) == 1
            assert child.layers == parent.layers
        if child.representation != parent.representation:
            changed.add("representation")
        if len(child.layers) != len(parent.layers):
            changed.add("depth")
            assert abs(len(child.layers) - len(parent.layers)) == 1
        if child.window_s != parent.window_s:
            changed.add("window")
    assert changed == {"rate", "representation", "depth", "window"}
    a, b = space.draw(rng), space.draw(rng)
    child = space.crossover(a, b, rng)
    assert child.layers in (a.layers, b.layers) and space.contains(child)


def test_a_network_is_built_for_its_own_granularity() -> None:
    space = audio_space()
    task = space._bound()
    arch = DataAwareArch(2000, 0.5, "mfcc", 32.0, 20, 10, ((4, 3, "relu"), (8, 5, "sigmoid")))
    model = space.build_model(arch, task)
    assert model.input_shape == (None, 1000, 1)
    assert model.count_params() == space.costs(arch).params
    assert space.task_for(arch, task).export_mode() == "int8-float-input"
    host = space.task_for(arch, task).with_granularity(arch.granularity())
    assert host.granularity() == Granularity(2000, 0.5, "mfcc", 32.0, 16.0, 20, 10)


def test_the_pooled_head_and_utterance_normalization_are_genes() -> None:
    """Both are searched where configured, keyed only where they differ from DANAS's."""
    space = audio_space(heads=["flatten", "pool"], feature_norms=["batch", "utterance"])
    rng = random.Random(5)
    drawn = [space.draw(rng) for _ in range(60)]
    assert {a.head for a in drawn} == {"flatten", "pool"}
    assert {a.feature_norm for a in drawn} == {"batch", "utterance"}
    for arch in drawn:
        assert space.from_key(arch.key()) == arch
        assert space.decode_int(space.encode_int(arch)) == arch
        assert arch.key().endswith("-Nutt") == (arch.feature_norm == "utterance")
    # DANAS's own choices leave a key as earlier runs stored it
    danas = DataAwareArch(2000, 0.5, "mel", 32.0, 20, None, ((4, 3, "relu"),))
    assert danas.key() == "data_aware-r2000-w0.5-mel-f32-m20-L4k3r"
    assert not audio_space().contains(replace(danas, head="pool"))
    with pytest.raises(ConfigError, match="heads: unknown \\['attention'\\]"):
        audio_space(heads=["attention"])


def test_utterance_normalization_removes_what_every_frame_shares() -> None:
    """A constant added to every frame of a window (a microphone's colouring, a voice's
    spectral tilt) does not change the output; with batch normalization alone it does."""
    task = audio_task(preprocessing="host", sample_rate=2000, representation="mel",
                      n_mels=20)
    space = get_space("data_aware", task=task, sample_rates=[2000], windows_s=[0.5],
                      representations=["mel"], n_mels=[20], max_layers=2,
                      heads=["pool"], feature_norms=["batch", "utterance"])
    time, bins, channels = task.feature_shape()
    x = np.random.default_rng(0).normal(size=(4, time, bins * channels)).astype(np.float32)
    tilt = np.random.default_rng(1).normal(size=(4, 1, bins * channels)).astype(np.float32)
    layers = ((4, 3, "relu"), (8, 3, "relu"))
    outputs = {}
    for norm in ("batch", "utterance"):
        arch = DataAwareArch(2000, 0.5, "mel", 32.0, 20, None, layers, "pool", norm)
        model = space.build_model(arch, task)
        assert model.count_params() == space.costs(arch).params
        outputs[norm] = np.abs(model.predict(x + 3 * tilt, verbose=0)
                               - model.predict(x, verbose=0)).max()
    assert outputs["utterance"] < 1e-5 < outputs["batch"]


def test_feature_masks_drop_whole_frames_and_bins_in_training_only() -> None:
    """augment.time_mask / bin_mask: in training whole frames and whole bins of the
    normalized feature map are zero; in inference (and so in the exported model) the
    network is the one without masks."""
    from host.spaces.base import BuildOptions
    from host.train.trainer import TrainConfig

    task = audio_task(preprocessing="host", sample_rate=2000, representation="mel",
                      n_mels=20)
    space = get_space("data_aware", task=task, sample_rates=[2000], windows_s=[0.5],
                      representations=["mel"], n_mels=[20], max_layers=1)
    assert space.feature_masks
    arch = DataAwareArch(2000, 0.5, "mel", 32.0, 20, None, ((4, 3, "relu"),))
    cfg = TrainConfig(augment={"time_mask": 0.3, "bin_mask": 0.3}, seed=3)
    assert cfg.augment is not None and not cfg.augment.perturbs_windows
    masked = space.build_model(arch, task, cfg.build_options())
    plain = space.build_model(arch, task, BuildOptions(seed=3, dropout=cfg.dropout))
    assert masked.count_params() == plain.count_params()
    plain.set_weights(masked.get_weights())
    time, bins, channels = task.feature_shape()
    x = np.random.default_rng(0).normal(size=(8, time, bins * channels)).astype(np.float32)
    np.testing.assert_allclose(masked.predict(x, verbose=0), plain.predict(x, verbose=0),
                               atol=1e-6)

    import tensorflow as tf

    after = tf.keras.Model(masked.inputs, masked.get_layer("bin_mask").output)
    fmap = after(x, training=True).numpy()  # (n, frames, bins, channels)
    zero_frames = np.all(fmap == 0, axis=(2, 3))
    zero_bins = np.all(fmap == 0, axis=(1, 3))
    assert zero_frames.any() and zero_bins.any()
    assert not zero_frames.all() and not zero_bins.all()
    assert np.all(after(x, training=False).numpy() != 0)


def test_feature_masks_need_a_space_with_a_feature_map() -> None:
    from host.search.config import _identity
    from host.spaces.bionet import BioNetArch
    from host.train.augment import Augmentation
    from host.train.trainer import TrainConfig, train_candidate

    with pytest.raises(ConfigError, match="augment.time_mask: must be a share in"):
        TrainConfig(augment={"time_mask": 0.5})
    bionet = get_space("bionet", task=EcgClassification(EcgDatasetConfig()))
    with pytest.raises(ConfigError, match="space 'bionet' computes no spectral feature map"):
        train_candidate(bionet, BioNetArch(0, 1, 4), EcgClassification(EcgDatasetConfig()),
                        None, TrainConfig(augment={"bin_mask": 0.1}))  # type: ignore[arg-type]
    # at 0 the masks leave a training's identity (and so a stored run's hashes) unchanged
    assert "time_mask" not in _identity(Augmentation(shift_fraction=0.1))
    assert _identity(Augmentation(time_mask=0.1))["time_mask"] == 0.1


# ------------------------------------------------------------------ the audio task
def test_speaker_split_and_host_features(data_dir: Path) -> None:
    task = audio_task(sample_rate=1000, representation="mel", n_mels=20, frame_ms=64.0)
    data = task.load()
    assert data.x_train.shape[1:] == (500, 1)
    assert set(data.speakers["test"]) == {"jackson"} and set(data.speakers["val"]) == {"yweweler"}
    assert not set(data.speakers["train"]) & {"jackson", "yweweler"}
    assert len(data.y_test) == 500 and np.bincount(data.y_test).tolist() == [50] * 10
    assert np.abs(data.x_train).max() <= 1.0 + 1e-6  # peak-normalised
    host = SpokenDigits(AudioDatasetConfig(**{**task.config.__dict__, "preprocessing": "host"}))
    hdata = host.load()
    time, bins, channels = host.feature_shape()
    assert hdata.x_train.shape[1:] == (time, bins * channels)
    assert host.input_spec().length == time and host.export_mode() == "int8"
    # grouped cross-validation over speakers: leave one speaker out, never the test speaker
    folds = data.grouped_folds(5)
    held_out = [set(f.groups_val.tolist()) for f in folds]
    assert all(len(h) == 1 for h in held_out)
    assert set().union(*held_out) == {"george", "lucas", "nicolas", "theo", "yweweler"}
    for f, h in zip(folds, held_out, strict=True):
        assert not set(f.groups_train.tolist()) & (h | {"jackson"})
        assert len(f.y_train) + len(f.y_val) == len(data.y_train) + len(data.y_val)
    random_split = audio_task(sample_rate=1000, representation="raw", split="random").load()
    with pytest.raises(ConfigError, match="cv_folds"):
        random_split.grouped_folds(3)


# ------------------------------------------------------------------ the strategy
class _Eval:
    """Scores genomes by a made-up fitness; records what the strategy asked for."""

    def __init__(self, space: DataAwareSpace) -> None:
        self.space, self.asked = space, []  # type: ignore[var-annotated]

    def __call__(self, genomes: list[list[int]], generation: int) -> list[Scored]:
        from host.search.pipeline import Evaluation, Figures, Stage, Status

        self.asked.append(genomes)
        out = []
        for g in genomes:
            arch = self.space.decode_int(g)
            assert arch is not None
            size = self.space.costs(arch).storage_int8_bytes
            ev = Evaluation(arch.key(), Figures(), [0.5, float(size)], 0.0, Status.OK,
                            Stage.MEASURE)
            out.append(Scored(g, ev))
        return out


def test_danas_strategy_breeds_from_tournament_winners() -> None:
    from host.search.strategies.danas import DanasStrategy

    space = audio_space()
    cfg = parse_config({
        "data": {"task": "audio", "window_s": 0.5},
        "space": {"name": "data_aware", **LADDERS},
        "strategy": {"name": "danas", "encoding": "integer", "population": 6,
                     "generations": 2, "initial": "trivial"},
        "objectives": [{"metric": "accuracy"}, {"metric": "storage_int8_bytes"}],
    })

    class Norm:
        def weighted_fitness(self, objectives: list[float], alpha: float, beta: float) -> float:
            return -float(objectives[1])  # the smaller the better

    ctx = SearchContext(cfg, space, Norm(), 0, lambda g: None)  # type: ignore[arg-type]
    evaluate = _Eval(space)
    DanasStrategy(ctx).run(evaluate, lambda generation, scored: False)
    first = [space.decode_int(g) for g in evaluate.asked[0]]
    assert len(first) == 6 and all(a is not None and len(a.layers) == 1 for a in first)
    # 3 tournaments keep 3 winners; 3 new networks per generation (round(3 x 0.2) = 1 cross)
    assert [len(g) for g in evaluate.asked] == [6, 3, 3]
    again = _Eval(space)
    DanasStrategy(ctx).run(again, lambda generation, scored: False)
    assert again.asked == evaluate.asked  # seeded: the same choices


def test_danas_needs_the_spaces_operators() -> None:
    with pytest.raises(ConfigError, match="strategy 'danas'.*space 'bionet'"):
        parse_config({"strategy": {"name": "danas", "encoding": "integer"}})
    with pytest.raises(ConfigError, match="compress"):
        parse_config({"data": {"task": "audio"}, "space": {"name": "data_aware"},
                      "strategy": {"name": "danas", "encoding": "integer"},
                      "compress": {"mode": "front"}})
    assert StrategyConfig(name="danas").update_ratio == 0.5


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    from host.search.runner import run_search

    tmp = tmp_path_factory.mktemp("danas")
    cfg = parse_config({
        "run": {"name": "danas-test", "seed": 0, "out_dir": str(tmp / "runs")},
        "data": {"task": "audio", "window_s": 0.5, "representation": "mel"},
        "space": {"name": "data_aware", "sample_rates": [2000, 1000], "windows_s": [0.5],
                  "representations": ["mel", "mfcc"], "frames_ms": [64.0], "n_mels": [20],
                  "n_mfcc": [10], "max_layers": 1, "filters": [4], "kernels": [3],
                  "activations": ["relu"], "dense_units": 8},
        "train": {"epochs": 2, "patience": None},
        "strategy": {"name": "danas", "encoding": "integer", "population": 2,
                     "generations": 1, "initial": "trivial"},
        "objectives": [{"metric": "accuracy"}, {"metric": "model_bytes", "device": "local"},
                       {"metric": "input_buffer_bytes"}],
        "devices": [{"name": "local", "address": "local"}],
        "measure": {"warmup_runs": 1, "min_runs": 5, "max_runs": 10,
                    "time_budget_seconds": 1},
    })
    result = run_search(cfg, progress=False)
    front = json.loads((tmp / "runs" / result.run_id / "front.json").read_text())
    return {"tmp": tmp, "result": result, "front": front}


def test_search_measures_models_with_their_front_end(smoke_run: dict[str, Any]) -> None:
    from host.export.flatbuf import io_types, model_ops, read_metadata

    front = smoke_run["front"]["front"]
    assert front, "the search found no model"
    for entry in front:
        blob = Path(entry["files"]["tflite"]).read_bytes()
        ops = set(model_ops(blob))
        assert "RFFT2D" in ops and "CONV_2D" in ops  # the front end runs on the device
        meta = read_metadata(blob)
        assert meta["task"] == "audio" and meta["data"]["sample_rate"] in (2000, 1000)
        assert str(io_types(blob)["inputs"][0]) == "float32"  # raw audio in
        assert entry["objectives"]["model_bytes@local"] == len(blob)
    run_dir = smoke_run["tmp"] / "runs" / smoke_run["result"].run_id
    plots = sorted(p.name for p in run_dir.glob("granularity_*.png"))
    assert plots == ["granularity_input_buffer_bytes.png", "granularity_model_bytes_at_local.png"]
    assert "coloured by sample rate" in (run_dir / "report.html").read_text()


def test_evaluate_reads_any_folder_of_wavs(smoke_run: dict[str, Any], data_dir: Path,
                                           tmp_path: Path) -> None:
    entry = smoke_run["front"]["front"][0]
    folder = tmp_path / "wavs"
    folder.mkdir()
    for digit in range(10):
        for n in range(3):
            src = data_dir / "fsdd" / "recordings" / f"{digit}_theo_{n}.wav"
            shutil.copy(src, folder / f"{digit}_newspeaker_{n}.wav")
    (folder / "3_newspeaker_9.wav").write_bytes(b"RIFF garbage")
    out = subprocess.run([*HOST, "evaluate", entry["files"]["tflite"], "--data-dir",
                          str(folder), "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["n"] == 30 and set(metrics["per_speaker"]) == {"newspeaker"}
    assert [s["file"] for s in metrics["skipped"]] == ["3_newspeaker_9.wav"]
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_a_board_that_cannot_run_the_front_end_refuses_it_before_training(
    tmp_path: Path, data_dir: Path
) -> None:
    """TFLite Micro has no RFFT2D: with the front end in the model, no candidate is trained
    for the emulated Nano 33 BLE, and each says why."""
    from host.search.runner import STORE_NAME, run_search
    from host.store.sqlite import RunStore

    cfg = parse_config({
        "run": {"name": "danas-nano", "seed": 0, "out_dir": str(tmp_path / "runs")},
        "data": {"task": "audio", "window_s": 0.5, "representation": "mel"},
        "space": {"name": "data_aware", "sample_rates": [1000], "windows_s": [0.5],
                  "representations": ["mel"], "frames_ms": [64.0], "n_mels": [20],
                  "max_layers": 1, "filters": [4], "kernels": [3], "activations": ["relu"]},
        "strategy": {"name": "danas", "encoding": "integer", "population": 2,
                     "generations": 1},
        "objectives": [{"metric": "accuracy"}, {"metric": "ram_bytes", "device": "nano33"}],
        "devices": [{"name": "nano33", "address": "local:mcu-emulator?board=nano33ble",
                     "timeout_s": 60}],
    })
    result = run_search(cfg, progress=False, report=False)
    assert result.trainings == 0
    evaluations = RunStore(tmp_path / "runs" / STORE_NAME).evaluations(result.run_id)
    assert evaluations and all(e["status"] == "failed" and e["stage"] == "screen"
                               for e in evaluations)
    assert all("no IMAG, REAL, RFFT2D" in e["detail"] and "preprocessing" in e["detail"]
               for e in evaluations)


# ------------------------------------------------------------------ hilnas train --task audio
def test_train_task_audio_refits_and_exports_with_its_front_end(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A front model of a data-aware search, trained again for deployment: on the
    validation speaker too (--refit), exported with its front end, readable by evaluate."""
    pytest.importorskip("tf_keras")
    from host.cli import main
    from host.export.flatbuf import read_metadata

    key = "data_aware-r1000-w0.5-mel-f64-m20-L4k3r-Hpool"
    out = tmp_path / "audio"
    assert main(["train", "--task", "audio", "--arch", key, "--epochs", "2", "--patience", "1",
                 "--augment", '{"shift_fraction": 0.1}', "--refit", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "refitting on training and validation together" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["arch"]["key"] == key and m["task"] == "audio"
    assert "the validation figure of the same network before the refit" in m["selection"]
    assert m["dataset"]["speakers"]["test"] == ["jackson"]
    assert m["train_config"]["augment"]["shift_fraction"] == 0.1
    # the refit's epochs are those the first training's early stopping kept
    first = m["history"]["before_refit_val_loss"]
    assert len(m["history"]["loss"]) == int(np.argmin(first)) + 1
    blob = (out / "model-int8-float-input.tflite").read_bytes()
    meta = read_metadata(blob)
    assert meta["arch"] == key and meta["sample_rate"] == 1000 and meta["task"] == "audio"
    assert 0.0 <= m["tflite"]["int8-float-input"]["accuracy"] <= 1.0
    assert m["tflite"]["int8-float-input"]["model_bytes"] == len(blob)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "audio"], "--arch: say which data_aware network to train"),
        (["--task", "audio", "--arch", "data_aware-r1000-w0.5-raw-L4k3r", "--preset", "aami5"],
         "--preset: not an option of --task audio"),
        (["--task", "audio", "--arch", "bionet-b0-x1-l16"], "not a data_aware key"),
        (["--task", "audio", "--space", "bionet", "--arch", "bionet-b0-x1-l16"],
         "--space: --task audio trains data_aware networks"),
        (["--task", "audio", "--arch", "data_aware-r16000-w1-raw-L4k3r"],
         "no valid input (sample_rate: 16000 Hz is above the recordings' 8000 Hz"),
        (["--task", "audio", "--arch", "data_aware-r1000-w0.5-raw-L4k3r", "--augment", "{x"],
         "--augment: not a JSON table"),
        (["--task", "audio", "--arch", "data_aware-r1000-w0.5-raw-L4k3r", "--augment",
          '{"speed": 0.1}'], "augment: unknown key speed"),
    ],
)
def test_bad_audio_train_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str, tmp_path: Path
) -> None:
    from host.cli import main

    assert main(["train", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

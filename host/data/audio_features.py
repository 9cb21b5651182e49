"""The audio feature front end: raw, spectrogram, mel-spectrogram or MFCC, inside the model.

Data Aware NAS searches the input's representation with the network. The front end is the
first, non-trainable layer of the Keras model (`frontend`), built from `tf.signal`, so one
graph computes the features in training on the host (`featurize` runs the same layer) and
on the device after conversion. The exported model takes float32 raw audio in [-1, 1]; its
front end stays float (RFFT2D has no int8 kernel, and a log spectrum squeezed through int8
before the log loses what the log is for) and the network after it is int8: the export mode
"int8-float-input" (`host.export.tflite`).

TensorFlow Lite Micro has no RFFT2D, REAL or IMAG kernel (`TFLM_UNSUPPORTED_OPS`), so a
microcontroller runs a model that takes the features as input, and the front end's cost on
it is the analytic estimate `frontend_cost` (docs/decisions.md, "Audio front end: tf.signal
inside the model (issue 14)").

Why tf.signal and not librosa: one implementation on both sides. librosa's defaults differ
(Slaney-normalised mel filters where tf.signal's are HTK, a different DCT scaling, centred
frames, `interp` edges for deltas), and hilnas needs the host and the device to agree with
each other, not with librosa.

Nothing here imports TensorFlow until a layer or features are asked for: the specs, shapes
and costs are plain arithmetic.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from host.errors import ConfigError

REPRESENTATIONS = ("raw", "spectrogram", "mel", "mfcc")

# log(x + LOG_FLOOR) of a power. A full-scale tone's bin carries about (frame_length / 2)^2
# of power with a Hann window (4,096 for a 128-sample frame), so 1e-6 sits ~96 dB below it:
# the dynamic range of the 16-bit ADC the audio comes from. It keeps the log finite on digital
# silence, in empty mel filters and on exact zeros (log 0 = -inf would poison training and
# the int8 calibration of the features), and bounds the features below at ln(1e-6) = -13.8,
# which gives the int8 tensor after the front end a finite, useful range.
LOG_FLOOR = 1e-6
# The mel filter bank's lower edge (tf.signal's default); the upper edge is sample_rate / 2.
MEL_LOWER_EDGE_HZ = 125.0
# The name scope of the front end's operators. The "int8-float-input" export
# (host.export.tflite) keeps every operator whose output tensor is named under a scope of this
# name in float32: left to itself the int8 quantizer quantizes everything with an int8 kernel,
# the audio at the input, the window, the power spectrum, the mel matmul and the log included
# (only RFFT2D, REAL and IMAG stayed float), which is not the front end the host trained on.
FLOAT_SCOPE = "hilnas_float"
# Shortest STFT frame accepted, in samples.
MIN_FRAME_SAMPLES = 8
# Largest |host featurize - LiteRT-run front end| accepted on log features (natural log of
# power, and MFCCs of it). Measured on 280 FSDD clips: at most 8.3e-4 (spectrogram at 8 kHz,
# bins near the floor), 1.9e-4 (mel), 6.3e-5 (mfcc with deltas); 0 for raw. 5e-3 is six
# times the worst and under a tenth of the int8 step of the features after the front end.
FEATURE_TOLERANCE = 5e-3
# Deltas: the regression over +/- DELTA_WIDTH frames (HTK's and librosa's width 5).
DELTA_WIDTH = 2

# Builtin TFLite operators of each converted front end ("int8-float-input" export, checked
# by tests/host/test_audio_features.py against converted models). The mel and DCT matrices
# are tensordots that convert to FULLY_CONNECTED; the deltas are slices of an edge-padded
# copy (CONCATENATION, STRIDED_SLICE, SUB, MUL, ADD) and the three channels a PACK.
_STFT_OPS = frozenset({"RESHAPE", "GATHER", "SLICE", "MUL", "RFFT2D", "REAL", "IMAG", "ADD", "LOG"})
_FRONTEND_OPS: dict[tuple[str, bool], frozenset[str]] = {
    ("raw", False): frozenset({"RESHAPE"}),
    ("spectrogram", False): _STFT_OPS,
    ("mel", False): _STFT_OPS | {"FULLY_CONNECTED"},
    ("mfcc", False): _STFT_OPS | {"FULLY_CONNECTED"},
    ("mfcc", True): _STFT_OPS
    | {"FULLY_CONNECTED", "CONCATENATION", "STRIDED_SLICE", "SUB", "PACK"},
}
# Front-end operators the tflite_micro wheel's interpreter has no kernel for, measured with
# one-operator models ("Didn't find op for builtin opcode 'RFFT2D'" / "Failed to get
# registration from op code RFFT2D", and the same for REAL and IMAG); every other operator
# of the front ends allocated and ran. See docs/decisions.md.
TFLM_UNSUPPORTED_OPS: frozenset[str] = frozenset({"RFFT2D", "REAL", "IMAG"})


@dataclass(frozen=True)
class FeatureSpec:
    """What the network sees of a window of audio: the representation and its STFT.

    `frame_ms`/`hop_ms`: the STFT frame and hop (Hann window, tf.signal.stft's default);
    `n_mels` for mel and mfcc; `n_mfcc` and `deltas` (MFCC plus delta and delta-delta as
    three channels) for mfcc only. Bad values raise ConfigError naming the field.
    """

    representation: str = "mfcc"
    sample_rate: int = 8000
    frame_ms: float = 32.0
    hop_ms: float = 16.0
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: bool = True

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ConfigError(
                f"representation: unknown {self.representation!r}; "
                f"choose one of {list(REPRESENTATIONS)}"
            )
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or (
            self.sample_rate <= 0
        ):
            raise ConfigError(f"sample_rate: {self.sample_rate!r} is not a positive integer (Hz)")
        for name in ("frame_ms", "hop_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ConfigError(f"{name}: {value!r} is not a positive number of milliseconds")
        for name in ("n_mels", "n_mfcc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: {value!r} is not a positive integer")
        if not isinstance(self.deltas, bool):
            raise ConfigError(f"deltas: {self.deltas!r} is not true or false")
        if self.representation == "raw":
            return
        if self.frame_length < MIN_FRAME_SAMPLES:
            raise ConfigError(
                f"frame_ms: {self.frame_ms} ms is {self.frame_length} samples at "
                f"{self.sample_rate} Hz; a frame needs at least {MIN_FRAME_SAMPLES}"
            )
        if self.frame_step < 1:
            raise ConfigError(
                f"hop_ms: {self.hop_ms} ms is less than one sample at {self.sample_rate} Hz"
            )
        if self.frame_step > self.frame_length:
            raise ConfigError(
                f"hop_ms: a hop of {self.frame_step} samples ({self.hop_ms} ms) is longer "
                f"than the frame of {self.frame_length} ({self.frame_ms} ms): samples "
                "between frames would be skipped"
            )
        if self.representation in ("mel", "mfcc"):
            bins = self.fft_length // 2 + 1
            if self.n_mels > bins:
                raise ConfigError(
                    f"n_mels: {self.n_mels} mel bands need at most the {bins} FFT bins of a "
                    f"{self.frame_length}-sample frame (fft_length {self.fft_length})"
                )
            if self.sample_rate / 2 <= MEL_LOWER_EDGE_HZ:
                raise ConfigError(
                    f"sample_rate: {self.sample_rate} Hz puts the mel bank's upper edge "
                    f"(sample_rate / 2) below its lower edge, {MEL_LOWER_EDGE_HZ} Hz"
                )
        if self.representation == "mfcc" and self.n_mfcc > self.n_mels:
            raise ConfigError(
                f"n_mfcc: {self.n_mfcc} coefficients need at most n_mels ({self.n_mels})"
            )

    @property
    def frame_length(self) -> int:
        """STFT frame in samples: round(frame_ms * sample_rate / 1000)."""
        return int(round(self.frame_ms * self.sample_rate / 1000.0))

    @property
    def frame_step(self) -> int:
        """STFT hop in samples: round(hop_ms * sample_rate / 1000)."""
        return int(round(self.hop_ms * self.sample_rate / 1000.0))

    @property
    def fft_length(self) -> int:
        """The next power of two at or above `frame_length` (tf.signal.stft's default)."""
        return 1 << max(self.frame_length - 1, 0).bit_length()

    @property
    def mel_upper_edge_hz(self) -> float:
        return self.sample_rate / 2.0

    def to_json(self) -> dict[str, Any]:
        """The spec's fields (`FeatureSpec.from_json` reads them back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        """The spec from `to_json`'s dict; unknown keys are a ConfigError naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"feature spec: unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)


def n_frames(spec: FeatureSpec, n_samples: int) -> int:
    """STFT frames of a window of `n_samples` (tf.signal.stft, pad_end=False).

    ConfigError when the window is shorter than one frame.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or (
        n_samples < 1
    ):
        raise ConfigError(f"window: {n_samples!r} is not a positive number of samples")
    if n_samples < spec.frame_length:
        raise ConfigError(
            f"window: {n_samples} samples are shorter than one STFT frame of "
            f"{spec.frame_length} samples ({spec.frame_ms} ms at {spec.sample_rate} Hz)"
        )
    return 1 + (int(n_samples) - spec.frame_length) // spec.frame_step


def feature_shape(spec: FeatureSpec, n_samples: int) -> tuple[int, int, int]:
    """(time, bins, channels) of the features of one window of `n_samples`.

    raw: (n_samples, 1, 1); spectrogram: (frames, fft_length // 2 + 1, 1); mel: (frames,
    n_mels, 1); mfcc: (frames, n_mfcc, 3 with deltas else 1).
    """
    if spec.representation == "raw":
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or (
            n_samples < 1
        ):
            raise ConfigError(f"window: {n_samples!r} is not a positive number of samples")
        return (int(n_samples), 1, 1)
    frames = n_frames(spec, n_samples)
    if spec.representation == "spectrogram":
        return (frames, spec.fft_length // 2 + 1, 1)
    if spec.representation == "mel":
        return (frames, spec.n_mels, 1)
    return (frames, spec.n_mfcc, 3 if spec.deltas else 1)


# ---- the Keras layer ------------------------------------------------------------------------


def dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """The orthonormal DCT-II as an (n_mels, n_mfcc) matrix: mfcc = log_mel @ matrix.

    `tf.signal.mfccs_from_log_mel_spectrograms` does not convert to TFLite builtins (its DCT
    slices a complex tensor, a `tf.StridedSlice` that needs Select TF ops), so the front end
    applies this constant as a tensordot (a FULLY_CONNECTED). Note the scaling: tf.signal's
    MFCCs equal these except coefficient 0, which tf.signal scales by sqrt(2) more.
    """
    import scipy.fft

    return np.asarray(
        scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=-1)[:, :n_mfcc], np.float32
    )


def _deltas(tf: Any, c: Any) -> Any:
    """HTK regression deltas over +/- 2 frames along axis 1 of (batch, time, coefficients).

    d_t = sum_{n=1..2} n (c_{t+n} - c_{t-n}) / (2 * sum_{n=1..2} n^2), edges repeated (HTK);
    librosa's default `mode="interp"` differs at the first and last two frames. Slicing an
    edge-padded copy converts to CONCATENATION, SLICE, SUB, MUL and ADD, all builtins.
    """
    first, last = c[:, :1], c[:, -1:]
    padded = tf.concat([first] * DELTA_WIDTH + [c] + [last] * DELTA_WIDTH, axis=1)
    t = c.shape[1]
    norm = 2.0 * sum(n * n for n in range(1, DELTA_WIDTH + 1))
    out = None
    for n in range(1, DELTA_WIDTH + 1):
        ahead = padded[:, DELTA_WIDTH + n : DELTA_WIDTH + n + t]
        behind = padded[:, DELTA_WIDTH - n : DELTA_WIDTH - n + t]
        term = (ahead - behind) * (n / norm)
        out = term if out is None else out + term
    return out


def compute_features(tf: Any, spec: FeatureSpec, audio: Any) -> Any:
    """The front end's graph: (batch, n_samples) float32 audio -> (batch, time, bins, ch).

    Its operators are named under `FLOAT_SCOPE`, which the "int8-float-input" export keeps
    in float32.
    """
    with tf.name_scope(FLOAT_SCOPE):
        return _compute_features(tf, spec, audio)


def _compute_features(tf: Any, spec: FeatureSpec, audio: Any) -> Any:
    if spec.representation == "raw":
        n = audio.shape[-1]
        return tf.reshape(audio, [-1, n, 1, 1])
    stft = tf.signal.stft(
        audio,
        frame_length=spec.frame_length,
        frame_step=spec.frame_step,
        fft_length=spec.fft_length,
        pad_end=False,
    )
    # |STFT|^2 from its parts: REAL and IMAG are builtins (tf.abs would be COMPLEX_ABS).
    re, im = tf.math.real(stft), tf.math.imag(stft)
    power = re * re + im * im
    if spec.representation == "spectrogram":
        return tf.expand_dims(tf.math.log(power + LOG_FLOOR), -1)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=spec.n_mels,
        num_spectrogram_bins=spec.fft_length // 2 + 1,
        sample_rate=spec.sample_rate,
        lower_edge_hertz=MEL_LOWER_EDGE_HZ,
        upper_edge_hertz=spec.mel_upper_edge_hz,
    )
    log_mel = tf.math.log(tf.tensordot(power, mel_matrix, 1) + LOG_FLOOR)
    if spec.representation == "mel":
        return tf.expand_dims(log_mel, -1)
    mfcc = tf.tensordot(log_mel, tf.constant(dct_matrix(spec.n_mels, spec.n_mfcc)), 1)
    if not spec.deltas:
        return tf.expand_dims(mfcc, -1)
    d1 = _deltas(tf, mfcc)
    d2 = _deltas(tf, d1)
    return tf.stack([mfcc, d1, d2], axis=-1)


_LAYER_CLASSES: dict[int, Any] = {}


def frontend_class(keras: Any) -> Any:
    """The front end's tf_keras Layer class, `AudioFrontend` (defined on first use).

    It is registered as "hilnas>AudioFrontend" and is this module's attribute
    `AudioFrontend`. tf_keras finds a nested custom layer of a saved `.keras` model only by
    its registration (it does not import the layer's module), so a process loads such a
    model once the class is defined: on the first `frontend`/`featurize`/`frontend_class`
    call, or at import of this module when tf_keras is already loaded. Defining it needs
    tf_keras, which this module does not import until asked.
    """
    cls = _LAYER_CLASSES.get(id(keras))
    if cls is not None:
        return cls
    from host.train.tfenv import import_tf

    tf = import_tf()

    class AudioFrontend(keras.layers.Layer):
        """(batch, n_samples) float32 audio in [-1, 1] -> (batch, time, bins, ch) features.

        Non-trainable, no weights; its config is the `FeatureSpec`'s fields.
        """

        def __init__(self, **kwargs: Any) -> None:
            spec_args = {
                f.name: kwargs.pop(f.name) for f in fields(FeatureSpec) if f.name in kwargs
            }
            kwargs["trainable"] = False
            kwargs["dtype"] = "float32"  # RFFT has no float16 kernel; features are float32
            super().__init__(**kwargs)
            self.spec = FeatureSpec(**spec_args)

        def call(self, inputs: Any) -> Any:
            x = tf.convert_to_tensor(inputs, dtype=tf.float32)
            if x.shape.rank != 2:
                raise ConfigError(
                    f"audio: the front end takes (batch, n_samples) audio, got shape {x.shape}"
                )
            if x.shape[-1] is not None:
                feature_shape(self.spec, int(x.shape[-1]))  # a window shorter than a frame
            return compute_features(tf, self.spec, x)

        def compute_output_shape(self, input_shape: Any) -> Any:
            shape = tf.TensorShape(input_shape)
            return tf.TensorShape([shape[0], *feature_shape(self.spec, int(shape[-1]))])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), **self.spec.to_json()}

    AudioFrontend.__module__ = __name__
    AudioFrontend.__qualname__ = "AudioFrontend"
    registered = keras.saving.register_keras_serializable(package="hilnas")(AudioFrontend)
    _LAYER_CLASSES[id(keras)] = registered
    globals()["AudioFrontend"] = registered
    return registered


def frontend(spec: FeatureSpec, keras: Any) -> Any:
    """A new front-end layer for `spec` (an `AudioFrontend`, see `frontend_class`)."""
    return frontend_class(keras)(**spec.to_json())


def featurize(audio: np.ndarray, spec: FeatureSpec, batch_size: int = 256) -> np.ndarray:
    """Features (n, time, bins, channels) float32 of windows `audio` (n, n_samples).

    Computed on the host by running the same front-end layer eagerly, `batch_size` windows
    at a time. `audio` is float in [-1, 1] ((n, n_samples, 1) is accepted too).
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ConfigError(f"audio: expected windows (n, n_samples), got shape {x.shape}")
    if batch_size < 1:
        raise ConfigError(f"batch_size: {batch_size} is not positive")
    shape = feature_shape(spec, x.shape[1])
    if len(x) == 0:
        return np.zeros((0, *shape), np.float32)
    from host.train.tfenv import import_keras, import_tf

    tf = import_tf()
    layer = frontend(spec, import_keras())
    out = [
        np.asarray(layer(tf.constant(x[i : i + batch_size])), dtype=np.float32)
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out, axis=0)


# ---- costs on the device ------------------------------------------------------------------


@dataclass(frozen=True)
class FrontendCost:
    """What one window's front end costs a device (an estimate, see `frontend_cost`)."""

    macs: int
    feature_buffer_bytes: int
    source: str = "estimated (analytic front-end model)"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Operations per value, counted as MACs (see frontend_cost).
_POWER_OPS_PER_BIN = 2  # re*re + im*im
_DELTA_OPS_PER_VALUE = 2 * DELTA_WIDTH  # per n: a difference and a multiply-accumulate


def frontend_cost(spec: FeatureSpec, n_samples: int) -> FrontendCost:
    """Multiply-accumulates and the float32 feature buffer of one window's front end.

    Per frame of L samples, FFT length N, B = N/2 + 1 bins, M mel bands, C coefficients:
    window L; real FFT 2 N log2(N) (the estimate for an N-point real FFT); power 2 B; then
    for a spectrogram the log, B; for mel and mfcc the dense mel matmul B M and the log M;
    for mfcc the DCT matmul M C, and with deltas 2 * 2 * 2 C per frame (each of delta and
    delta-delta: a difference and a multiply-accumulate per +/-n, n = 1, 2). A log counts
    as one operation. raw costs nothing and has no feature buffer (the network reads the
    window). The FFT's scratch buffers are not counted.
    """
    shape = feature_shape(spec, n_samples)
    if spec.representation == "raw":
        return FrontendCost(macs=0, feature_buffer_bytes=0)
    frames = shape[0]
    n_fft = spec.fft_length
    bins = n_fft // 2 + 1
    per_frame = spec.frame_length + 2 * n_fft * int(math.log2(n_fft)) + _POWER_OPS_PER_BIN * bins
    if spec.representation == "spectrogram":
        per_frame += bins
    else:
        per_frame += bins * spec.n_mels + spec.n_mels
        if spec.representation == "mfcc":
            per_frame += spec.n_mels * spec.n_mfcc
            if spec.deltas:
                per_frame += 2 * _DELTA_OPS_PER_VALUE * spec.n_mfcc
    return FrontendCost(
        macs=int(frames * per_frame),
        feature_buffer_bytes=4 * int(np.prod(shape)),
    )


def input_buffer_bytes(spec: FeatureSpec, n_samples: int, *, sample_bytes: int = 2) -> int:
    """Bytes a device holds for one window: the PCM samples plus the feature buffer.

    `sample_bytes`: 2 for int16 PCM from the ADC. raw has no feature buffer.
    """
    if sample_bytes < 1:
        raise ConfigError(f"sample_bytes: {sample_bytes} is not positive")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or (
        n_samples < 1
    ):
        raise ConfigError(f"window: {n_samples!r} is not a positive number of samples")
    return int(n_samples) * sample_bytes + frontend_cost(spec, n_samples).feature_buffer_bytes


def frontend_ops(spec: FeatureSpec) -> frozenset[str]:
    """The builtin TFLite operator names of `spec`'s converted front end."""
    rep = spec.representation
    return _FRONTEND_OPS[(rep, bool(spec.deltas) if rep == "mfcc" else False)]


# A process that already has tf_keras (the converter loading a saved model, which imports
# this module to find the class) gets the registered class at import.
if "tf_keras" in sys.modules:
    frontend_class(sys.modules["tf_keras"])

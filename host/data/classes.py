"""Output classes: presets and custom mappings from annotation codes to named classes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from host.data.mitdb import ANNOTATION_CODES, RHYTHM_CODES
from host.errors import ConfigError


@dataclass(frozen=True)
class ClassScheme:
    """How annotations become output classes.

    `source` is "beat" (beat annotation symbols) or "rhythm" (the rhythm in effect, from
    `aux_note`). `mapping` sends a code to a class name; unmapped codes are ignored.
    `priority` lists class names, highest first: a window holding codes of several classes
    takes the highest-priority one (see docs/data.md).
    """

    name: str
    source: str
    classes: tuple[str, ...]
    mapping: tuple[tuple[str, str], ...]
    priority: tuple[str, ...]

    def code_to_index(self) -> dict[str, int]:
        return {code: self.classes.index(cls) for code, cls in self.mapping}

    def priority_rank(self) -> dict[int, int]:
        """Class index -> rank (0 is the highest priority)."""
        return {self.classes.index(c): r for r, c in enumerate(self.priority)}

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "source": self.source,
            "classes": list(self.classes),
            "mapping": {code: cls for code, cls in self.mapping},
            "priority": list(self.priority),
        }


# AAMI EC57 beat groups (as used by de Chazal et al.).
_AAMI = {
    "N": "NLRej",
    "S": "AaJS",
    "V": "VE",
    "F": "F",
    "Q": "/fQ",
}
_ANOMALOUS = "AaJSVEF/fQ!BnLRej"  # everything a beat code can say besides "N"


def _scheme(
    name: str, source: str, groups: Mapping[str, list[str] | str], priority: list[str]
) -> ClassScheme:
    mapping = tuple((code, cls) for cls, codes in groups.items() for code in codes)
    return ClassScheme(name, source, tuple(groups), mapping, tuple(priority))


def _presets() -> dict[str, ClassScheme]:
    # normal-vs-anomalous: as in BioNetExplorer's DNN1, a window is anomalous when any beat
    # in it is not a normal beat (bundle branch blocks and escape beats count as anomalous).
    nva = _scheme(
        "normal-vs-anomalous",
        "beat",
        {"normal": "N", "anomalous": [c for c in _ANOMALOUS if c != "N"]},
        ["anomalous", "normal"],
    )
    aami5 = _scheme("aami5", "beat", dict(_AAMI), ["V", "F", "S", "Q", "N"])
    # normal-vs-ectopic: AAMI EC57's grouping for a two-class detector, as the inter-patient
    # literature scores one. Bundle branch block and escape beats are AAMI "N": they are a
    # patient's steady conduction, not an ectopic event, and normal-vs-anomalous (which
    # counts them anomalous) asks a beat classifier to diagnose them from one lead. Q
    # (unclassifiable and paced fusion) is left out, as de Chazal et al. do.
    nve = _scheme(
        "normal-vs-ectopic",
        "beat",
        {"normal": _AAMI["N"], "ectopic": _AAMI["S"] + _AAMI["V"] + _AAMI["F"]},
        ["ectopic", "normal"],
    )
    ventricular = _scheme(
        "ventricular",
        "rhythm",
        {"normal": ["(N"], "VT": ["(VT"], "VFL": ["(VFL", "(VF"]},
        ["VFL", "VT", "normal"],
    )
    return {s.name: s for s in (nva, nve, aami5, ventricular)}


PRESETS: dict[str, ClassScheme] = _presets()


def custom_scheme(
    mapping: Mapping[str, str | Sequence[str]],
    source: str = "beat",
    priority: list[str] | None = None,
    name: str = "custom",
) -> ClassScheme:
    """Return A user's classes: class name -> annotation codes (a string of symbols or a list).

    Example: ``{"normal": "N", "lbbb": "L", "other": "RVAF"}`` keeps left bundle branch
    block apart, for a user with a known condition. Priority defaults to the mapping's
    order reversed: later classes override earlier ones, so the first class is the
    background (usually "normal").
    """
    if source not in ("beat", "rhythm"):
        raise ConfigError(f"custom.source: must be 'beat' or 'rhythm', not {source!r}")
    if len(mapping) < 2:
        raise ConfigError("custom: needs at least two classes")
    known = set(ANNOTATION_CODES) if source == "beat" else set(RHYTHM_CODES)
    seen: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for cls, codes in mapping.items():
        codes_list = list(codes) if isinstance(codes, str) and source == "beat" else codes
        if isinstance(codes_list, str):
            codes_list = [codes_list]
        if not codes_list:
            raise ConfigError(f"custom: class {cls!r} has no annotation codes")
        for code in codes_list:
            if code not in known:
                raise ConfigError(
                    f"custom: class {cls!r} uses unknown {source} code {code!r} "
                    f"(known: {' '.join(sorted(known))})"
                )
            if code in seen:
                raise ConfigError(f"custom: code {code!r} is in both {seen[code]!r} and {cls!r}")
            seen[code] = cls
        groups[cls] = list(codes_list)
    prio = priority if priority is not None else list(reversed(list(groups)))
    if sorted(prio) != sorted(groups):
        raise ConfigError(f"custom.priority: must list exactly the classes {list(groups)}")
    return _scheme(name, source, groups, prio)


def resolve_scheme(
    preset: str,
    custom: Mapping[str, str | Sequence[str]] | None = None,
    source: str = "beat",
    priority: Sequence[str] | None = None,
) -> ClassScheme:
    """Return the scheme for a preset name, or for `custom` with its mapping."""
    if preset == "custom":
        if not custom:
            raise ConfigError("custom: preset 'custom' needs a mapping of class -> codes")
        return custom_scheme(custom, source=source, priority=list(priority) if priority else None)
    if preset not in PRESETS:
        raise ConfigError(
            f"preset: unknown preset {preset!r}; choose one of {sorted(PRESETS) + ['custom']}"
        )
    return PRESETS[preset]

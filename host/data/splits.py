"""Train/validation/test splits: patient-wise (default), de Chazal DS1/DS2, and random."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from host.errors import ConfigError

SPLITS = ("patient", "dechazal", "random")

# Records 201 and 202 come from the same patient (MIT-BIH directory); they must stay on one
# side of any patient-wise split.
SAME_PATIENT: tuple[tuple[str, ...], ...] = (("201", "202"),)

# de Chazal et al. (2004). The paced records 102, 104, 107 and 217 are left out, as AAMI
# recommends. 202 is moved from DS2 to DS1 so that patient 201/202 sits on one side.
DS1 = tuple(
    "101 106 108 109 112 114 115 116 118 119 122 124 201 202 203 205 207 208 209 215 220 "
    "223 230".split()
)
DS2 = tuple(
    "100 103 105 111 113 117 121 123 200 210 212 213 214 219 221 222 228 231 232 233 234".split()
)


def record_groups(records: Sequence[str]) -> list[tuple[str, ...]]:
    """Return records grouped by patient (each group goes to one side of a split)."""
    present = set(records)
    grouped: set[str] = set()
    groups: list[tuple[str, ...]] = []
    for same in SAME_PATIENT:
        members = tuple(r for r in same if r in present)
        if members:
            groups.append(members)
            grouped.update(members)
    groups.extend((r,) for r in records if r not in grouped)
    return sorted(groups)


def _coverage(
    parts: Sequence[Sequence[tuple[str, ...]]],
    classes_of: Mapping[str, set[int]],
    n_groups_with: dict[int, int],
) -> int:
    """How many (class, side) pairs that could be covered are covered; higher is better."""
    score = 0
    for c, n in n_groups_with.items():
        wanted = [0, 2] if n == 2 else [0, 1, 2] if n >= 3 else [0]
        for side in wanted:
            if any(c in classes_of[r] for g in parts[side] for r in g):
                score += 1
    return score


def patient_split(
    records: Sequence[str],
    classes_by_record: Mapping[str, set[int]],
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    tries: int = 500,
) -> tuple[list[str], list[str], list[str]]:
    """Return A seeded hold-out of whole patients: (train, val, test) record lists.

    Groups are shuffled with `seed`; among up to `tries` shuffles the first one that puts
    every class in every side that could hold it (in training always, in test when two or
    more patients have it, in validation when three or more do) is kept, so rare classes
    are not lost to one side by chance.
    """
    groups = record_groups(records)
    if len(groups) < 3:
        raise ConfigError(
            f"split: a patient-wise split needs at least 3 patients, got {len(groups)} "
            f"({', '.join(records)}); use split='random'"
        )
    n = len(groups)
    n_test = max(1, round(fractions[2] * n))
    n_val = max(1, round(fractions[1] * n))
    if n_test + n_val >= n:
        n_val = max(0, n - n_test - 1)
    n_groups_with: dict[int, int] = {}
    for g in groups:
        for c in set().union(*(classes_by_record[r] for r in g)):
            n_groups_with[c] = n_groups_with.get(c, 0) + 1
    best_score, best = -1, None
    rng = np.random.default_rng(seed)
    full = _coverage([groups, groups, groups], classes_by_record, n_groups_with)
    for _ in range(tries):
        order = [groups[i] for i in rng.permutation(n)]
        parts = [order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]]
        score = _coverage(parts, classes_by_record, n_groups_with)
        if score > best_score:
            best_score, best = score, parts
        if score == full:
            break
    assert best is not None
    train, val, test = ([r for g in part for r in g] for part in best)
    return sorted(train), sorted(val), sorted(test)


def dechazal_split(
    records: Sequence[str], seed: int = 0, val_fraction: float = 0.1
) -> tuple[list[str], list[str], list[str]]:
    # A wider validation side (val_fraction) trades training patients for a quality figure
    # that does not swing from one epoch to the next (docs/decisions.md, issue 18).
    """DS1 for training (a seeded tenth of its patients held out for validation), DS2 for test."""
    present = set(records)
    ds1 = [r for r in DS1 if r in present]
    ds2 = [r for r in DS2 if r in present]
    if not ds1 or not ds2:
        raise ConfigError("split: 'dechazal' needs records of both DS1 and DS2")
    groups = record_groups(ds1)
    rng = np.random.default_rng(seed)
    n_val = max(1, round(val_fraction * len(groups)))
    order = [groups[i] for i in rng.permutation(len(groups))]
    val = sorted(r for g in order[:n_val] for r in g)
    train = sorted(r for g in order[n_val:] for r in g)
    return train, val, sorted(ds2)


def random_split(
    y: np.ndarray, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the paper's random 70/10/20 split of windows, stratified by class: index arrays.

    Windows of one patient land on both sides, so test quality is optimistic; results
    produced with it say so in their split description.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(fractions[2] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    out = [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]
    return out[0], out[1], out[2]


def name_list(value: Any, key: str, what: str) -> tuple[str, ...]:
    """A configuration's list of names (speakers, subjects) as a tuple.

    One string is an error, not a list of its letters.
    """
    if isinstance(value, str):
        raise ConfigError(f"{key}: give a list of {what}, not one string")
    return tuple(str(v) for v in value)


def check_holdout(present: set[str], val: Sequence[str], test: Sequence[str],
                  what: str) -> tuple[set[str], set[str]]:
    """Validate a hold-out of whole groups (patients, speakers, subjects): (val, test) sets.

    A name not `present`, one on both sides, or no group left for training is a ConfigError
    naming it (a typo would otherwise hold out nobody).
    """
    if isinstance(val, str) or isinstance(test, str):
        raise ConfigError(f"{what}s: give a sequence of names, not one string")
    v, t = set(val), set(test)
    unknown = sorted((v | t) - present)
    if unknown:
        raise ConfigError(f"split: {what}(s) {', '.join(unknown)} not in the data; present: "
                          f"{', '.join(sorted(present))}")
    both = sorted(v & t)
    if both:
        raise ConfigError(f"split: {what}(s) {', '.join(both)} in both validation and test")
    if not present - v - t:
        raise ConfigError(
            f"split: no {what} left for training (val {sorted(v)}, test {sorted(t)})"
        )
    return v, t


@dataclass
class Splits:
    """A task's prepared data: windows (n, length, channels) and targets on three sides.

    Every task's dataset is one (host.tasks.TaskData); `metadata` says what a model trained
    on it needs to be evaluated the same way later (stored in the exported .tflite).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    split_description: str
    #: a second model input per window (n, features), e.g. a beat's RR intervals; None: the
    #: networks take the window only
    aux_train: np.ndarray | None = field(default=None, kw_only=True)
    aux_val: np.ndarray | None = field(default=None, kw_only=True)
    aux_test: np.ndarray | None = field(default=None, kw_only=True)
    #: how the validation side was chosen, as the search's quality figure names it
    selection: str = field(default="", kw_only=True)
    #: the group (patient, speaker, subject) of each training and validation window, where
    #: the task knows it: what grouped cross-validation (`grouped_folds`) divides
    groups_train: np.ndarray | None = field(default=None, kw_only=True)
    groups_val: np.ndarray | None = field(default=None, kw_only=True)
    #: what a group is, in the words of the quality figure's source
    group_kind: str = field(default="patient", kw_only=True)

    def metadata(self) -> dict[str, Any]:
        return {"split": self.split_description}

    @property
    def has_aux(self) -> bool:
        return self.aux_train is not None

    def inputs(self, side: str) -> np.ndarray | list[np.ndarray]:
        """What a model is fed on one side: the windows, or [windows, aux] with a second input."""
        if side not in ("train", "val", "test"):
            raise ValueError(f"side must be train, val or test, not {side!r}")
        x = getattr(self, f"x_{side}")
        aux = getattr(self, f"aux_{side}")
        return x if aux is None else [x, aux]

    def grouped_folds(self, k: int, seed: int = 0) -> list[Splits]:
        """`k` splits for grouped cross-validation over the training and validation groups.

        Fold 0 is this split itself (its validation groups); the training groups are
        dealt, in a seeded order, into the other k - 1 folds, each of which validates on
        its share while the rest (the original validation groups included) train. Every
        group validates exactly once; the test side is the same in every fold and never
        trains or validates.
        """
        if self.groups_train is None or self.groups_val is None:
            raise ConfigError(
                "cv_folds: this dataset does not say which patient or speaker each window comes "
                "from (a random split, or a task that keeps no groups)"
            )
        train_groups = sorted(set(self.groups_train.tolist()))
        if len(train_groups) < k - 1 or not len(self.groups_val):
            raise ConfigError(
                f"cv_folds: {k} folds need at least {k - 1} training groups and a validation "
                f"side; this split has {len(train_groups)} and "
                f"{len(set(self.groups_val.tolist()))}"
            )
        dealt = np.random.default_rng(seed).permutation(len(train_groups))
        order = [train_groups[i] for i in dealt]
        shares = [order[i::k - 1] for i in range(k - 1)]
        x_all = np.concatenate([self.x_train, self.x_val])
        y_all = np.concatenate([self.y_train, self.y_val])
        g_all = np.concatenate([self.groups_train, self.groups_val])
        aux_all = (None if self.aux_train is None or self.aux_val is None
                   else np.concatenate([self.aux_train, self.aux_val]))
        folds: list[Splits] = [self]
        for j, share in enumerate(shares, start=2):
            val = np.isin(g_all, share)
            folds.append(replace(
                self,
                x_train=x_all[~val], y_train=y_all[~val], groups_train=g_all[~val],
                x_val=x_all[val], y_val=y_all[val], groups_val=g_all[val],
                aux_train=None if aux_all is None else aux_all[~val],
                aux_val=None if aux_all is None else aux_all[val],
                selection=f"cross-validation fold {j} of {k}: validation {', '.join(share)}",
            ))
        return folds

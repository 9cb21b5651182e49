"""The search-space interface and its registry (`@register_space`, `get_space`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np

from host.errors import ConfigError


class Space(ABC):
    """A finite set of architectures with an encoding for genetic search.

    Architectures are frozen, hashable values with a stable `key()`. `decode` returns None
    for a chromosome that names no architecture of the (bounded) space; a search gives such
    an individual fitness 0 and discards it, as BioNetExplorer does.
    """

    name: str = ""

    @abstractmethod
    def architectures(self, bounded: bool = True) -> list[Any]:
        """Every architecture, in a stable order."""

    def size(self, bounded: bool = True) -> int:
        """Return the number of architectures (with or without the upper bounds)."""
        return len(self.architectures(bounded))

    def canonical(self, arch: Any) -> Any:
        """Return the one architecture that stands for every gene set building this network.

        A search trains and measures each network once; spaces whose genes can describe the
        same network twice override this. Default: the architecture itself.
        """
        return arch

    @abstractmethod
    def contains(self, arch: Any) -> bool:
        """Whether `arch` is in the bounded space."""

    @abstractmethod
    def encode(self, arch: Any) -> list[int]:
        """Return the binary chromosome (a list of 0/1) of an architecture."""

    @abstractmethod
    def decode(self, bits: Sequence[int]) -> Any | None:
        """Return the architecture of a chromosome, or None when it is invalid."""

    @property
    @abstractmethod
    def chromosome_length(self) -> int:
        """Bits in a chromosome."""

    def sample(self, n: int, seed: int = 0, replace: bool = False) -> list[Any]:
        """Return `n` architectures drawn uniformly from the bounded space (seeded)."""
        archs = self.architectures(bounded=True)
        if not replace and n > len(archs):
            raise ConfigError(f"sample: asked for {n} of a space of {len(archs)}")
        idx = np.random.default_rng(seed).choice(len(archs), size=n, replace=replace)
        return [archs[int(i)] for i in idx]

    @abstractmethod
    def build_keras_model(
        self,
        arch: Any,
        input_length: int,
        n_channels: int,
        n_classes: int,
        batch_size: int | None = None,
    ) -> Any:
        """Return an uncompiled tf-keras model of `arch`."""


_SPACES: dict[str, Callable[..., Space]] = {}
S = TypeVar("S", bound=type[Space])


def register_space(name: str) -> Callable[[S], S]:
    """Class decorator that makes a space available to `get_space(name)`."""

    def deco(cls: S) -> S:
        if name in _SPACES:
            raise ConfigError(f"space {name!r} is registered twice")
        cls.name = name
        _SPACES[name] = cls
        return cls

    return deco


def get_space(name: str, **kwargs: Any) -> Space:
    """Return the space registered as `name`, built with `kwargs` (its bounds)."""
    if name not in _SPACES:
        # Spaces register on import; try the module of the same name (host.spaces.<name>).
        import importlib

        try:
            importlib.import_module(f"host.spaces.{name}")
        except ModuleNotFoundError:
            pass
    if name not in _SPACES:
        raise ConfigError(f"space: unknown {name!r}; known: {sorted(_SPACES)}")
    return _SPACES[name](**kwargs)


def available_spaces() -> list[str]:
    """Return the registered space names."""
    return sorted(_SPACES)


Key = Hashable

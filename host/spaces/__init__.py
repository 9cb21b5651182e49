"""Search spaces: the `Space` interface, its registry, and BioNetExplorer's space."""

from host.spaces.base import Space, available_spaces, get_space, register_space
from host.spaces.bionet import (
    REFERENCE_MAX_PARAMS,
    BioNetArch,
    BioNetSpace,
    arch_from_any,
    build_keras_model,
)

__all__ = [
    "REFERENCE_MAX_PARAMS",
    "BioNetArch",
    "BioNetSpace",
    "Space",
    "arch_from_any",
    "available_spaces",
    "build_keras_model",
    "get_space",
    "register_space",
]

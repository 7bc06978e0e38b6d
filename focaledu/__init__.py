"""focaledu: Focal Modulation Networks, as an executable course and a small Keras 3 library."""

from focaledu.attention import MultiHeadSelfAttention, SelfAttentionBlock
from focaledu.layers import FocalModulation, FocalNetBlock, Mlp, PatchEmbedding
from focaledu.model import PRESETS, FocalNet, list_presets, preset_config, pretrained
from focaledu.zoo import list_pretrained, pretrained_info

def _version() -> str:
    # Defined once, in pyproject.toml; an installed package (editable or not) carries it in its metadata.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("focaledu")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "FocalModulation",
    "FocalNet",
    "FocalNetBlock",
    "Mlp",
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "PRESETS",
    "SelfAttentionBlock",
    "list_presets",
    "list_pretrained",
    "pretrained",
    "pretrained_info",
    "preset_config",
]

"""focaledu: Focal Modulation Networks, as an executable course and a small Keras 3 library."""

from focaledu.attention import MultiHeadSelfAttention, SelfAttentionBlock
from focaledu.layers import FocalModulation, FocalNetBlock, Mlp, PatchEmbedding
from focaledu.model import PRESETS, FocalNet, list_presets, preset_config
from focaledu.zoo import list_pretrained, pretrained, pretrained_info

__version__ = "0.1.0"

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

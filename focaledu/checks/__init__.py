"""Auto-checks for the book's exercises: ``focaledu.checks.<name>(your_function)``.

Each check returns a ``CheckResult`` (truthy when it passed) whose message says
what is wrong, not just pass/fail. See ``focaledu.checks._core.compare``.
"""

from focaledu.checks._core import CheckResult, compare
from focaledu.checks.ablations import ablated_aggregation, accuracy_z_score, matched_hidden_width, mixer_params
from focaledu.checks.architecture import block_params, stage_shapes, stage_shapes_of_preset, stem_macs
from focaledu.checks.attention import attention_growth, focal_aggregation_matrix, focal_modulation_1d, perturbation_reach, scaled_dot_product_attention, score_matrix_bytes, self_attention_1d, softmax, split_heads  # noqa: E501
from focaledu.checks.cost import attention_macs, crossover_tokens, modulation_macs, power_law_slope
from focaledu.checks.interpretation import dominant_level, modulator_norm, normalize_map, upsample_nearest
from focaledu.checks.modulation import focal_block, focal_modulation, gated_aggregation, hierarchical_context, kernel_sizes, modulate, modulation_params, receptive_field_prediction, receptive_fields, split_projection  # noqa: E501
from focaledu.checks.modulation import scale_exponents, softmax_gated_aggregation
from focaledu.checks.training import optimizer_steps, smooth_labels, warmup_cosine_lr, weight_decay_mask

__all__ = ["CheckResult", "compare"]
__all__ += ["focal_block", "focal_modulation", "gated_aggregation", "hierarchical_context", "kernel_sizes", "modulate", "modulation_params", "receptive_fields", "split_projection"]
__all__ += ["receptive_field_prediction"]
__all__ += ["focal_aggregation_matrix", "focal_modulation_1d", "scaled_dot_product_attention", "score_matrix_bytes", "self_attention_1d", "softmax", "split_heads"]
__all__ += ["attention_growth", "perturbation_reach"]
__all__ += ["scale_exponents", "softmax_gated_aggregation"]
__all__ += ["attention_macs", "crossover_tokens", "modulation_macs", "power_law_slope"]
__all__ += ["block_params", "stage_shapes", "stage_shapes_of_preset", "stem_macs"]
__all__ += ["optimizer_steps", "smooth_labels", "warmup_cosine_lr", "weight_decay_mask"]
__all__ += ["dominant_level", "modulator_norm", "normalize_map", "upsample_nearest"]
__all__ += ["ablated_aggregation", "accuracy_z_score", "matched_hidden_width", "mixer_params"]

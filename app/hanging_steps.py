"""Hanging-protocol steps as data (no Qt): the sequence Space walks through while reading a screening exam.

A step names a layout of the hanging, which exam it is for (the current one, or the prior hung below it) and
how the views are zoomed. Screening workstations step with one key through priors comparison → current
four-up → CC pair → MLO pair → magnified views; :data:`DEFAULT_STEPS` is that sequence mapped onto the
layouts the workstation has. A reader keeps their own sequence in a JSON file named in Preferences::

    [{"layout": "prior-cc", "exam": "prior", "zoom": "fit", "label": "CC: now above prior"},
     {"layout": "four", "exam": "current", "zoom": "fit", "label": "four views"}]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from inference.errors import MammoError
from inference.files import write_text_atomic

# the layouts a step may name (the keys 1-7 of the View menu); the prior layouts hang the current pair above
# the prior's, so a step for the prior exam uses one of them
LAYOUTS = ("four", "cc", "mlo", "right", "left", "prior-cc", "prior-mlo")
PRIOR_LAYOUTS = ("prior-cc", "prior-mlo")
EXAMS = ("current", "prior")
# fit: each view whole, at one physical scale; quadrant: twice that (a quarter of the fitted area, centred on
# the breast), for the magnified look at the tissue
ZOOMS = ("fit", "quadrant")


class HangingStepsError(MammoError):
    """A hanging-steps file that cannot be read or does not describe steps."""


@dataclass(frozen=True)
class Step:
    """One step: ``layout`` (one of :data:`LAYOUTS`), ``exam`` ("current" or "prior"), ``zoom`` (one of
    :data:`ZOOMS`) and the ``label`` shown on the status line."""

    layout: str
    exam: str = "current"
    zoom: str = "fit"
    label: str = ""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r} (one of {', '.join(LAYOUTS)})")
        if self.exam not in EXAMS:
            raise ValueError(f"unknown exam {self.exam!r} (current or prior)")
        if self.zoom not in ZOOMS:
            raise ValueError(f"unknown zoom {self.zoom!r} (one of {', '.join(ZOOMS)})")
        if self.exam == "prior" and self.layout not in PRIOR_LAYOUTS:
            raise ValueError(f"the prior is shown only in the layouts {' / '.join(PRIOR_LAYOUTS)}, "
                             f"not {self.layout!r}")

    @property
    def needs_prior(self) -> bool:
        return self.exam == "prior" or self.layout in PRIOR_LAYOUTS

    @property
    def title(self) -> str:
        return self.label or f"{self.layout} ({self.exam}, {self.zoom})"


DEFAULT_STEPS: tuple[Step, ...] = (
    Step("prior-cc", "prior", "fit", "priors: CC now above prior"),
    Step("prior-mlo", "prior", "fit", "priors: MLO now above prior"),
    Step("four", "current", "fit", "current: four views"),
    Step("cc", "current", "fit", "CC pair"),
    Step("mlo", "current", "fit", "MLO pair"),
    Step("cc", "current", "quadrant", "CC pair magnified"),
    Step("mlo", "current", "quadrant", "MLO pair magnified"),
)


def steps_from_json(text: str, path: str | Path | None = None) -> tuple[Step, ...]:
    """Steps from JSON text: a list of objects with ``layout`` and optional ``exam``, ``zoom``, ``label``.

    Raises:
        HangingStepsError: not JSON, not a non-empty list of steps, or a step with an unknown value (the
            step's number and the file named).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise HangingStepsError(f"hanging steps are not valid JSON (line {error.lineno}: {error.msg})", path) from None
    if not isinstance(data, list) or not data:
        raise HangingStepsError("hanging steps must be a non-empty JSON list of steps", path)
    steps = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict) or "layout" not in item:
            raise HangingStepsError(f"step {number} is not an object with a \"layout\"", path)
        unknown = set(item) - {"layout", "exam", "zoom", "label"}
        if unknown:
            raise HangingStepsError(f"step {number}: unknown field(s) {', '.join(sorted(unknown))}", path)
        try:
            steps.append(Step(**{key: str(value) for key, value in item.items()}))
        except ValueError as error:
            raise HangingStepsError(f"step {number}: {error}", path) from None
    return tuple(steps)


def read_steps(path: str | Path | None) -> tuple[Step, ...]:
    """The steps of the file at ``path``; no path (empty) means :data:`DEFAULT_STEPS`."""
    if not path:
        return DEFAULT_STEPS
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise HangingStepsError(f"the hanging-steps file cannot be read ({reason})", path) from None
    return steps_from_json(text, path)


def write_steps(path: str | Path, steps: tuple[Step, ...] | list[Step]) -> None:
    """Write ``steps`` as JSON (atomically), in the form :func:`read_steps` reads."""
    write_text_atomic(Path(path), json.dumps([asdict(step) for step in steps], indent=1))


class StepCursor:
    """Where the reader is in a sequence: :meth:`move` goes forward or back, skipping the steps that need a
    prior when there is none (and saying how many it skipped)."""

    def __init__(self, steps: tuple[Step, ...]) -> None:
        self.steps = steps
        self.index = -1  # before the first step

    def move(self, forward: bool, has_prior: bool) -> tuple[Step | None, int]:
        """(the step now shown or None at either end, how many steps needing a prior were skipped)."""
        skipped = 0
        index = self.index
        while True:
            index += 1 if forward else -1
            if index < 0 or index >= len(self.steps):
                return None, skipped
            if self.steps[index].needs_prior and not has_prior:
                skipped += 1
                continue
            self.index = index
            return self.steps[index], skipped

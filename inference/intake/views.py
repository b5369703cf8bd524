"""The four screening views and their parts (laterality, projection)."""

from __future__ import annotations

from enum import StrEnum


class Laterality(StrEnum):
    LEFT = "L"
    RIGHT = "R"


class Projection(StrEnum):
    CC = "CC"
    MLO = "MLO"


class View(StrEnum):
    """A screening view, spelled as in the GMIC exam lists (``L-CC``)."""

    L_CC = "L-CC"
    R_CC = "R-CC"
    L_MLO = "L-MLO"
    R_MLO = "R-MLO"

    @property
    def laterality(self) -> Laterality:
        return Laterality(self.value[0])

    @property
    def projection(self) -> Projection:
        return Projection(self.value[2:])

    @property
    def other_side(self) -> View:
        """The same projection of the other breast (L-CC for R-CC): the view hung beside it."""
        return View.of("L" if self.laterality == Laterality.RIGHT else "R", self.projection)

    @classmethod
    def parse(cls, text: str | View) -> View:
        """Accept ``L-CC``, ``L_CC``, ``LCC`` or ``l-cc``; raise ``ValueError`` otherwise."""
        if isinstance(text, View):
            return text
        key = str(text).strip().upper().replace("_", "").replace("-", "").replace(" ", "")
        for view in cls:
            if view.value.replace("-", "") == key:
                return view
        raise ValueError(f"unknown view {text!r}: expected one of L-CC, R-CC, L-MLO, R-MLO")

    @classmethod
    def of(cls, laterality: Laterality | str, projection: Projection | str) -> View:
        return cls(f"{Laterality(laterality).value}-{Projection(projection).value}")

"""The model protocol: what a family declares and how the pipeline calls it.

A *family* (GMIC, GLAM, …) knows how to recognise and remap its checkpoints, which preprocessing it needs and
how to run its network. Whatever it is, it answers with :class:`inference.results.types.ModelViewOutput`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from inference.intake.views import View
from inference.results.types import InputFrame, ModelIdentity, ModelViewOutput

if TYPE_CHECKING:  # torch is imported where models run
    import torch


@dataclass(frozen=True)
class LoadedModel:
    """A ready model (eval mode, float32, CPU, never mutated by the pipeline) with its identity."""

    model: torch.nn.Module
    identity: ModelIdentity


@dataclass(frozen=True)
class Prepared:
    """One view prepared for a family's network."""

    view: View
    input: np.ndarray
    frame: InputFrame
    warnings: tuple[str, ...] = ()


ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Commands:
    """What ``train``, ``evaluate`` and ``calibrate`` need from a family, so that no command names a family.

    Code is named as ``"module:attribute"`` and imported only when a command runs (a family's training code
    imports its family module, so the family cannot import it back at registration).
    """

    #: the training options (a ``JsonOptions`` dataclass) and the function that trains with them; None: no training
    train_config: str | None = None
    train: str | None = None
    #: command-line options this family's training takes -> the field of its options they set
    train_options: Mapping[str, str] = field(default_factory=dict)
    #: what ``evaluate`` measures: "windows" (per image and window), "classes" (classification report),
    #: "detections" (FROC); None: not measured by ``evaluate``
    evaluation: str | None = None
    #: for "classes": a module with ``evaluation_images(data, classes, phantoms, seed)`` and
    #: ``held_out(images, classes, training, seed)`` (the test part of the model's own training split)
    evaluation_data: str | None = None
    #: ``calibrate`` fits a temperature to this family's window logits
    temperature_calibration: bool = False


NO_COMMANDS = Commands()


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names."""
    module, _, attribute = reference.partition(":")
    target = importlib.import_module(module)
    return getattr(target, attribute) if attribute else target


def commands_of(family: ModelFamily) -> Commands:
    """A family's commands (families registered without them — tests' own — have none)."""
    return getattr(family, "commands", NO_COMMANDS)


class ModelFamily(Protocol):
    """What a family provides. Families register with :func:`inference.families.registry.register`."""

    name: str
    #: the preprocessing this family's inputs come from; families with the same key share prepared views
    preprocessing: str
    #: what the train / evaluate / calibrate commands need (optional: :func:`commands_of`)
    commands: Commands

    def recognises(self, state: Mapping[str, torch.Tensor]) -> bool:
        """Whether a (remapped or not) state dict has this family's layout."""

    def build(self, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], path: str,
              options: Mapping[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
        """Remap (a pure function of the state), check strictly and load: (eval-mode module, identity fields:
        classes, malignancy, exclusive, percent_t, settings …)."""

    def prepare(self, model_image: np.ndarray, view: View, horizontal_flip: bool) -> Prepared:
        """The model input of one view and its frame."""

    def run(self, model: torch.nn.Module, batch: Sequence[Prepared], device: torch.device, mode: str,
            identity: ModelIdentity) -> list[ModelViewOutput]:
        """Run the network on a batch of prepared views (inference mode is set by the caller)."""

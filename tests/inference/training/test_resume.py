"""The one resume helper every family's training uses."""

from __future__ import annotations

import pytest
import torch

from inference.training.resume import resume, save_checkpoint


def test_a_checkpoint_of_another_model_is_refused_in_one_line(tmp_path):
    """Training into a folder that holds another family's run (or other widths) printed torch's screens of
    missing and unexpected keys; the model is left as it was."""
    path = tmp_path / "checkpoint.pt"
    small = torch.nn.Linear(2, 2)
    save_checkpoint(path, small, {"adam": torch.optim.Adam(small.parameters())}, {"epoch": 1}, [])
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    wider = torch.nn.Linear(2, 3)
    for model in (other, wider):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ValueError, match="checkpoint.pt: the checkpoint is of another model .* differs"):
            resume(path, model, {"adam": torch.optim.Adam(model.parameters())}, torch.device("cpu"))
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    same = torch.nn.Linear(2, 2)
    progress, history = resume(path, same, {"adam": torch.optim.Adam(same.parameters())}, torch.device("cpu"))
    assert progress == {"epoch": 1} and history == [] and torch.equal(same.weight, small.weight)

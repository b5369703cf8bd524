"""The prefetch yields a core to the window without taking it from the window's own analyses."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from app.background import at_full_speed, yielding_to_the_window


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: the prefetch has no core to leave")
def test_a_foreground_analysis_started_during_a_prefetch_runs_on_every_thread():
    """torch's thread count is the process's and a thread keeps the value it first saw: an analysis thread
    started while the prefetch had lowered it ran on one core fewer for its whole life."""
    full = torch.get_num_threads()
    inside, done = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def prefetch() -> None:
        with yielding_to_the_window():
            seen["prefetch"] = torch.get_num_threads()
            at_full_speed()  # the prefetch runs the same analysis function: it stays yielded
            seen["prefetch, analysis"] = torch.get_num_threads()
            inside.set()
            done.wait(30)

    def foreground(name: str, full_speed: bool) -> None:
        inside.wait(30)
        if full_speed:
            at_full_speed()
        seen[name] = torch.get_num_threads()

    prefetching = threading.Thread(target=prefetch)
    prefetching.start()
    for name, full_speed in (("unguarded", False), ("window", True)):  # one after the other, while it prefetches
        thread = threading.Thread(target=foreground, args=(name, full_speed))
        thread.start()
        thread.join(30)
    done.set()
    prefetching.join(30)
    assert seen["prefetch"] == seen["prefetch, analysis"] == max(1, min(full, os.cpu_count() - 1)) < full
    assert seen["unguarded"] < full  # what the window's analysis saw before
    assert seen["window"] == full and torch.get_num_threads() == full

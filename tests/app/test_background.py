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


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: the prefetch has no core to leave")
def test_each_thread_keeps_its_own_count_whichever_sets_it_first():
    """A thread takes the process's count at its first parallel op: a prefetch that lowered its count and then
    read DICOM for a while ran on every core once a window thread had asked for full speed meanwhile, and the
    other way round."""
    full = torch.get_num_threads()
    steps = [threading.Event() for _ in range(4)]
    seen: dict[str, int] = {}

    def prefetch() -> None:
        with yielding_to_the_window():
            steps[0].set()
            steps[1].wait(30)  # meanwhile a window thread asks for full speed; no torch op here yet
            seen["prefetch"] = torch.get_num_threads()
            steps[2].set()
            steps[3].wait(30)

    def window() -> None:
        steps[0].wait(30)
        at_full_speed()
        steps[1].set()
        steps[2].wait(30)
        seen["window"] = torch.get_num_threads()
        steps[3].set()

    threads = [threading.Thread(target=prefetch), threading.Thread(target=window)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == {"prefetch": max(1, min(full, os.cpu_count() - 1)), "window": full}

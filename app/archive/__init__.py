"""The archive batch: one model run over many exams (``python main.py batch``), on this machine or on a Ray
cluster, resumable, with one table of results.

The unit of work (:mod:`app.archive.unit`) knows nothing of the engine: decode and prepare an exam, run the
models, write its files. The local engine (:mod:`app.archive.local`) runs the three steps in one process;
the Ray engine (:mod:`app.archive.ray_engine`) maps them onto Ray Data stages. Both write the same files.
"""

"""Writes reads as fast as it can and prints each one once it is durable; killed at random by the test."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.study.store import Store  # noqa: E402
from app.study.sessions import ReadingSession  # noqa: E402

store = Store(Path(sys.argv[1]))
session = ReadingSession(store, int(sys.argv[2]), sys.argv[3])
position = session.next_position()
while position is not None:
    case = session.case_at(position).case_id
    if "unaided" not in session.reads(case):
        session.commit(case, "unaided", {"L": 0.25, "R": 0.75}).result()
        print(f"saved unaided {case}", flush=True)
    session.reveal(case).result()
    session.commit(case, "aided", {"L": 0.5, "R": 0.5}).result()
    print(f"saved aided {case}", flush=True)
    position = session.next_position()
print("done", flush=True)

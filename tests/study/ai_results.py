"""What 'study scores' leaves for a reading screen to show, written directly: the first model's scores of each
case with their stored result. An aided or concurrent read, and the sequential design's reveal, need it."""

from __future__ import annotations

import json
import time

from app.study.store import Store

RESULT_KEY = "test-ai-result"


def store_ai_results(store: Store, study_id: int, score: float = 0.5) -> None:
    """Give every case of the study its stored AI result. Scores already stored (``insert_model_scores``) keep
    their values and get their result; a study without a model gets one, ``model``, scoring every breast
    ``score`` (a study's first model is the one the reading screen shows)."""

    def work(db) -> None:
        db.execute("INSERT OR IGNORE INTO study_models VALUES (?, 'model', 'model', 'gmic', '[\"benign\", "
                   "\"malignant\"]', '[\"malignant\"]', 'test') ", (study_id,))
        first = db.execute("SELECT model_id FROM study_models WHERE study_id=? ORDER BY rowid LIMIT 1",
                           (study_id,)).fetchone()[0]
        for (case_id,) in db.execute("SELECT case_id FROM study_cases WHERE study_id=?", (study_id,)).fetchall():
            for breast in ("L", "R"):
                db.execute("INSERT INTO model_scores SELECT ?, ?, ?, ?, ?, ?, ?, '' WHERE NOT EXISTS (SELECT 1 FROM "
                           "model_scores WHERE study_id = ? AND case_id = ? AND breast = ? AND model_id = ?)",
                           (study_id, case_id, breast, first, score,
                            json.dumps({"benign": 1 - score, "malignant": score}), RESULT_KEY,
                            study_id, case_id, breast, first))
        for (key,) in db.execute("SELECT DISTINCT result_key FROM model_scores WHERE study_id=?",
                                 (study_id,)).fetchall():
            db.execute("INSERT OR IGNORE INTO analysis_results VALUES (?, '{}', X'', ?)", (key, time.time()))

    store.submit(work).result()

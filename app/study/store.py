"""The local SQLite store shared by the workstation and reader studies.

WAL mode, a schema version with forward migrations, and one writer: every write goes through a single
background thread (``submit``), so the GUI never blocks on the disk and writes are serialised. A write is
durable (committed, WAL synced with ``synchronous=FULL``) when its future completes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.errors import MammoError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 18
# the AI scores a reader was shown are part of the reads made with them: from the sqlite3 shell a score could be
# changed or deleted after the aided reads, and the model's AUC and the telemetry changed silently. Once a reader
# has seen a case's AI (a reveal, an aided or concurrent read), its scores stay as they were shown; only the stored
# result they come with may be attached or renewed (study scores after an import, whose export carries the scores
# without the maps)
SHOWN_SCORE_TRIGGERS = """
    CREATE TRIGGER shown_model_scores_stay_update BEFORE UPDATE ON model_scores
    WHEN (EXISTS (SELECT 1 FROM reveals WHERE study_id = OLD.study_id AND case_id = OLD.case_id)
        OR EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id AND case_id = OLD.case_id
            AND modality IN ('aided', 'concurrent')))
    AND (NEW.study_id IS NOT OLD.study_id OR NEW.case_id IS NOT OLD.case_id OR NEW.breast IS NOT OLD.breast
        OR NEW.model_id IS NOT OLD.model_id OR NEW.malignant IS NOT OLD.malignant
        OR NEW.probabilities_json IS NOT OLD.probabilities_json OR NEW.missing_reason IS NOT OLD.missing_reason)
    BEGIN SELECT RAISE(ABORT, 'a model score a reader was shown cannot be changed'); END;
    CREATE TRIGGER shown_model_scores_stay_delete BEFORE DELETE ON model_scores
    WHEN EXISTS (SELECT 1 FROM reveals WHERE study_id = OLD.study_id AND case_id = OLD.case_id)
    OR EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id AND case_id = OLD.case_id
        AND modality IN ('aided', 'concurrent'))
    BEGIN SELECT RAISE(ABORT, 'a model score a reader was shown cannot be removed'); END;
    CREATE TRIGGER shown_model_scores_stay_insert BEFORE INSERT ON model_scores
    WHEN EXISTS (SELECT 1 FROM model_scores WHERE study_id = NEW.study_id AND case_id = NEW.case_id
        AND breast = NEW.breast AND model_id = NEW.model_id AND (malignant IS NOT NEW.malignant
        OR probabilities_json IS NOT NEW.probabilities_json OR missing_reason IS NOT NEW.missing_reason))
    AND (EXISTS (SELECT 1 FROM reveals WHERE study_id = NEW.study_id AND case_id = NEW.case_id)
        OR EXISTS (SELECT 1 FROM study_reads WHERE study_id = NEW.study_id AND case_id = NEW.case_id
            AND modality IN ('aided', 'concurrent')))
    BEGIN SELECT RAISE(ABORT, 'a model score a reader was shown cannot be replaced'); END;
"""
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE exam_reads (
        exam_key TEXT NOT NULL,
        reader TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        malignant REAL CHECK (malignant BETWEEN 0 AND 1),
        benign REAL CHECK (benign IS NULL OR benign BETWEEN 0 AND 1),
        birads TEXT,
        committed INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (exam_key, reader, breast)
    );
    CREATE TABLE exam_results (
        exam_key TEXT NOT NULL,
        model_key TEXT NOT NULL,
        result_json TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (exam_key, model_key)
    );
    """,
    2: """
    CREATE TABLE studies (
        study_id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        design TEXT NOT NULL CHECK (design IN ('unaided', 'sequential', 'concurrent')),
        seed INTEGER NOT NULL,
        washout_days INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE study_readers (
        study_id INTEGER NOT NULL REFERENCES studies(study_id),
        reader TEXT NOT NULL,
        PRIMARY KEY (study_id, reader)
    );
    CREATE TABLE study_cases (
        study_id INTEGER NOT NULL REFERENCES studies(study_id),
        case_id TEXT NOT NULL,
        exam_path TEXT NOT NULL,
        truth_left TEXT NOT NULL CHECK (truth_left IN ('malignant', 'benign', 'normal', 'none')),
        truth_right TEXT NOT NULL CHECK (truth_right IN ('malignant', 'benign', 'normal', 'none')),
        notes TEXT NOT NULL DEFAULT '',
        training INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (study_id, case_id)
    );
    CREATE TABLE reading_order (
        study_id INTEGER NOT NULL,
        reader TEXT NOT NULL,
        position INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        PRIMARY KEY (study_id, reader, position),
        FOREIGN KEY (study_id, reader) REFERENCES study_readers(study_id, reader),
        FOREIGN KEY (study_id, case_id) REFERENCES study_cases(study_id, case_id)
    );
    CREATE TABLE study_reads (
        study_id INTEGER NOT NULL,
        reader TEXT NOT NULL,
        case_id TEXT NOT NULL,
        modality TEXT NOT NULL CHECK (modality IN ('unaided', 'aided', 'concurrent')),
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        malignant REAL NOT NULL CHECK (malignant BETWEEN 0 AND 1),
        birads TEXT NOT NULL DEFAULT '',
        duration_s REAL NOT NULL,
        committed_at REAL NOT NULL,
        PRIMARY KEY (study_id, reader, case_id, modality, breast),
        FOREIGN KEY (study_id, case_id) REFERENCES study_cases(study_id, case_id)
    );
    CREATE TABLE reveals (
        study_id INTEGER NOT NULL,
        reader TEXT NOT NULL,
        case_id TEXT NOT NULL,
        revealed_at REAL NOT NULL,
        PRIMARY KEY (study_id, reader, case_id)
    );
    CREATE TABLE model_scores (
        study_id INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        malignant REAL NOT NULL,
        benign REAL NOT NULL,
        cache_key TEXT NOT NULL,
        PRIMARY KEY (study_id, case_id, breast)
    );
    CREATE TABLE model_cache (
        cache_key TEXT PRIMARY KEY,
        result_json TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TRIGGER committed_reads_are_final_update BEFORE UPDATE ON study_reads
    BEGIN SELECT RAISE(ABORT, 'a committed read cannot be changed'); END;
    CREATE TRIGGER committed_reads_are_final_delete BEFORE DELETE ON study_reads
    BEGIN SELECT RAISE(ABORT, 'a committed read cannot be deleted'); END;
    CREATE TRIGGER no_unaided_after_reveal BEFORE INSERT ON study_reads
    WHEN NEW.modality = 'unaided' AND EXISTS (
        SELECT 1 FROM reveals WHERE study_id = NEW.study_id AND reader = NEW.reader AND case_id = NEW.case_id)
    BEGIN SELECT RAISE(ABORT, 'the unaided read is locked: the AI was already shown for this case'); END;
    CREATE TRIGGER reveal_needs_unaided BEFORE INSERT ON reveals
    WHEN (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'sequential' AND (
        SELECT COUNT(*) FROM study_reads WHERE study_id = NEW.study_id AND reader = NEW.reader
        AND case_id = NEW.case_id AND modality = 'unaided') < 2
    BEGIN SELECT RAISE(ABORT, 'commit the unaided read of both breasts before the AI is shown'); END;
    CREATE TRIGGER aided_needs_reveal BEFORE INSERT ON study_reads
    WHEN NEW.modality = 'aided' AND NOT EXISTS (
        SELECT 1 FROM reveals WHERE study_id = NEW.study_id AND reader = NEW.reader AND case_id = NEW.case_id)
    BEGIN SELECT RAISE(ABORT, 'an aided read needs the AI to have been shown first'); END;
    """,
    # the crossover design: two sessions separated by a washout, half of each reader's cases read unaided
    # first and half with the AI first; SQLite cannot alter a CHECK, so ``studies`` is rebuilt (foreign keys
    # are off during migrations and checked before the commit)
    3: """
    DROP TRIGGER reveal_needs_unaided;
    CREATE TABLE studies_v3 (
        study_id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        design TEXT NOT NULL CHECK (design IN ('unaided', 'sequential', 'concurrent', 'crossover')),
        seed INTEGER NOT NULL,
        washout_days INTEGER NOT NULL DEFAULT 0 CHECK (washout_days >= 0),
        created_at REAL NOT NULL
    );
    INSERT INTO studies_v3 SELECT study_id, name, design, seed, washout_days, created_at FROM studies;
    DROP TABLE studies;
    ALTER TABLE studies_v3 RENAME TO studies;
    CREATE TRIGGER reveal_needs_unaided BEFORE INSERT ON reveals
    WHEN (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'sequential' AND (
        SELECT COUNT(*) FROM study_reads WHERE study_id = NEW.study_id AND reader = NEW.reader
        AND case_id = NEW.case_id AND modality = 'unaided') < 2
    BEGIN SELECT RAISE(ABORT, 'commit the unaided read of both breasts before the AI is shown'); END;
    CREATE TABLE crossover_arms (
        study_id INTEGER NOT NULL,
        reader TEXT NOT NULL,
        case_id TEXT NOT NULL,
        first_modality TEXT NOT NULL CHECK (first_modality IN ('unaided', 'concurrent')),
        PRIMARY KEY (study_id, reader, case_id),
        FOREIGN KEY (study_id, reader) REFERENCES study_readers(study_id, reader),
        FOREIGN KEY (study_id, case_id) REFERENCES study_cases(study_id, case_id)
    );
    CREATE TRIGGER crossover_first_read_follows_the_plan BEFORE INSERT ON study_reads
    WHEN EXISTS (
        SELECT 1 FROM crossover_arms a WHERE a.study_id = NEW.study_id AND a.reader = NEW.reader
        AND a.case_id = NEW.case_id AND a.first_modality != NEW.modality)
    AND NOT EXISTS (
        SELECT 1 FROM study_reads r WHERE r.study_id = NEW.study_id AND r.reader = NEW.reader
        AND r.case_id = NEW.case_id AND r.modality != NEW.modality)
    BEGIN SELECT RAISE(ABORT, 'this case is read in the other modality first (crossover plan)'); END;
    CREATE TRIGGER washout_between_modalities BEFORE INSERT ON study_reads
    WHEN (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'crossover' AND EXISTS (
        SELECT 1 FROM study_reads r WHERE r.study_id = NEW.study_id AND r.reader = NEW.reader
        AND r.case_id = NEW.case_id AND r.modality != NEW.modality
        AND r.committed_at > (julianday('now') - 2440587.5) * 86400.0
            - 86400.0 * (SELECT washout_days FROM studies WHERE study_id = NEW.study_id))
    BEGIN SELECT RAISE(ABORT, 'the washout between the two readings of this case has not passed yet'); END;
    """,
    # a breast without images has no model score (NULL and the reason), never a confident 0; scores written
    # as 0.0 for such breasts by schema 3 are recognised from their cached result (no breast entry) and
    # corrected
    4: """
    CREATE TABLE model_scores_v4 (
        study_id INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        malignant REAL CHECK (malignant IS NULL OR malignant BETWEEN 0 AND 1),
        benign REAL CHECK (benign IS NULL OR benign BETWEEN 0 AND 1),
        cache_key TEXT NOT NULL,
        missing_reason TEXT NOT NULL DEFAULT '' CHECK ((malignant IS NULL) = (missing_reason != '')),
        PRIMARY KEY (study_id, case_id, breast)
    );
    INSERT INTO model_scores_v4 SELECT s.study_id, s.case_id, s.breast,
        CASE WHEN json_extract(c.result_json, '$.breasts.' || s.breast) IS NULL AND c.cache_key IS NOT NULL
             THEN NULL ELSE s.malignant END,
        CASE WHEN json_extract(c.result_json, '$.breasts.' || s.breast) IS NULL AND c.cache_key IS NOT NULL
             THEN NULL ELSE s.benign END,
        s.cache_key,
        CASE WHEN json_extract(c.result_json, '$.breasts.' || s.breast) IS NULL AND c.cache_key IS NOT NULL
             THEN 'no images of this breast' ELSE '' END
        FROM model_scores s LEFT JOIN model_cache c ON c.cache_key = s.cache_key;
    DROP TABLE model_scores;
    ALTER TABLE model_scores_v4 RENAME TO model_scores;
    """,
    # one cache of analysis results for the workstation, the studies and the reports (JSON + binary maps,
    # keyed by images, models and mode); model scores per model identity, so that readers are compared with
    # each model of a study. Old scores become those of a model called 'model' (their cached result says which)
    5: """
    CREATE TABLE analysis_results (
        result_key TEXT PRIMARY KEY,
        result_json TEXT NOT NULL,
        maps BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    INSERT INTO analysis_results SELECT cache_key, result_json, X'', created_at FROM model_cache;
    DROP TABLE model_cache;
    DROP TABLE exam_results;
    CREATE TABLE study_models (
        study_id INTEGER NOT NULL REFERENCES studies(study_id),
        model_id TEXT NOT NULL,
        label TEXT NOT NULL,
        family TEXT NOT NULL,
        classes_json TEXT NOT NULL,
        malignancy_json TEXT NOT NULL,
        model_key TEXT NOT NULL,
        PRIMARY KEY (study_id, model_id)
    );
    INSERT INTO study_models SELECT DISTINCT study_id, 'model', 'model', 'gmic', '["benign", "malignant"]',
        '["malignant"]', '' FROM model_scores;
    CREATE TABLE model_scores_v5 (
        study_id INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        model_id TEXT NOT NULL,
        malignant REAL CHECK (malignant IS NULL OR malignant BETWEEN 0 AND 1),
        probabilities_json TEXT,
        result_key TEXT NOT NULL,
        missing_reason TEXT NOT NULL DEFAULT '' CHECK ((probabilities_json IS NULL) = (missing_reason != '')),
        PRIMARY KEY (study_id, case_id, breast, model_id),
        FOREIGN KEY (study_id, model_id) REFERENCES study_models(study_id, model_id)
    );
    INSERT INTO model_scores_v5 SELECT study_id, case_id, breast, 'model', malignant,
        CASE WHEN malignant IS NULL THEN NULL ELSE json_object('benign', benign, 'malignant', malignant) END,
        cache_key, missing_reason FROM model_scores;
    DROP TABLE model_scores;
    ALTER TABLE model_scores_v5 RENAME TO model_scores;
    CREATE TABLE exam_marks (
        exam_key TEXT NOT NULL,
        reader TEXT NOT NULL,
        mark_id INTEGER NOT NULL,
        view TEXT NOT NULL CHECK (view IN ('L-CC', 'R-CC', 'L-MLO', 'R-MLO')),
        row REAL NOT NULL,
        col REAL NOT NULL,
        label TEXT NOT NULL,
        confidence INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),
        created_at REAL NOT NULL,
        PRIMARY KEY (exam_key, reader, mark_id)
    );
    CREATE TABLE study_marks (
        study_id INTEGER NOT NULL,
        reader TEXT NOT NULL,
        case_id TEXT NOT NULL,
        modality TEXT NOT NULL,
        mark_id INTEGER NOT NULL,
        view TEXT NOT NULL CHECK (view IN ('L-CC', 'R-CC', 'L-MLO', 'R-MLO')),
        row REAL NOT NULL,
        col REAL NOT NULL,
        label TEXT NOT NULL,
        confidence INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),
        PRIMARY KEY (study_id, reader, case_id, modality, mark_id),
        FOREIGN KEY (study_id, case_id) REFERENCES study_cases(study_id, case_id)
    );
    CREATE TRIGGER study_marks_are_final_update BEFORE UPDATE ON study_marks
    BEGIN SELECT RAISE(ABORT, 'a committed mark cannot be changed'); END;
    CREATE TRIGGER study_marks_are_final_delete BEFORE DELETE ON study_marks
    BEGIN SELECT RAISE(ABORT, 'a committed mark cannot be deleted'); END;
    ALTER TABLE exam_reads ADD COLUMN density TEXT NOT NULL DEFAULT '';
    ALTER TABLE exam_reads ADD COLUMN recommendation TEXT NOT NULL DEFAULT '';
    """,
    # the workstation's first committed read is final (the hybrid rests on the reader's independent opinion);
    # a change after the model was shown is a separate, time-stamped amendment beside it, never an overwrite.
    # Existing rows are kept as they are: a committed one becomes final from now on, a draft stays editable
    6: """
    CREATE TRIGGER committed_exam_reads_are_final_update BEFORE UPDATE ON exam_reads
    WHEN OLD.committed = 1
    BEGIN SELECT RAISE(ABORT, 'a committed read cannot be changed: a later change is an amendment'); END;
    CREATE TRIGGER committed_exam_reads_are_final_delete BEFORE DELETE ON exam_reads
    WHEN OLD.committed = 1
    BEGIN SELECT RAISE(ABORT, 'a committed read cannot be deleted'); END;
    CREATE TABLE exam_read_amendments (
        exam_key TEXT NOT NULL,
        reader TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        kind TEXT NOT NULL DEFAULT 'amended after AI' CHECK (kind = 'amended after AI'),
        amended_at REAL NOT NULL,
        malignant REAL CHECK (malignant IS NULL OR malignant BETWEEN 0 AND 1),
        benign REAL CHECK (benign IS NULL OR benign BETWEEN 0 AND 1),
        birads TEXT NOT NULL DEFAULT '',
        density TEXT NOT NULL DEFAULT '',
        recommendation TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (exam_key, reader, breast, amended_at)
    );
    CREATE TRIGGER amendment_needs_a_committed_read BEFORE INSERT ON exam_read_amendments
    WHEN NOT EXISTS (
        SELECT 1 FROM exam_reads WHERE exam_key = NEW.exam_key AND reader = NEW.reader AND breast = NEW.breast
        AND committed = 1)
    BEGIN SELECT RAISE(ABORT, 'an amendment needs a committed first read of that breast'); END;
    CREATE TRIGGER amendments_are_final_update BEFORE UPDATE ON exam_read_amendments
    BEGIN SELECT RAISE(ABORT, 'an amendment cannot be changed'); END;
    CREATE TRIGGER amendments_are_final_delete BEFORE DELETE ON exam_read_amendments
    BEGIN SELECT RAISE(ABORT, 'an amendment cannot be deleted'); END;
    """,
    # localisation (FROC) studies: where each case's lesions are, per breast and view (a centre in the view's
    # original image pixels, an outline as a cropped PNG mask and/or a radius in mm, the view's pixel spacing
    # when known), each lesion's weight (NULL: equal within the case), and the rule that scores a mark against
    # them. Studies made before have no lesions and no rule: they stay ROC studies
    7: """
    CREATE TABLE study_lesions (
        study_id INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        lesion_id TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        view TEXT NOT NULL CHECK (view IN ('L-CC', 'R-CC', 'L-MLO', 'R-MLO')),
        centre_row REAL NOT NULL,
        centre_col REAL NOT NULL,
        radius_mm REAL CHECK (radius_mm IS NULL OR radius_mm > 0),
        mask_png BLOB,
        mask_row INTEGER NOT NULL DEFAULT 0,
        mask_col INTEGER NOT NULL DEFAULT 0,
        spacing_row_mm REAL CHECK (spacing_row_mm IS NULL OR spacing_row_mm > 0),
        spacing_col_mm REAL CHECK (spacing_col_mm IS NULL OR spacing_col_mm > 0),
        weight REAL CHECK (weight IS NULL OR weight > 0),
        PRIMARY KEY (study_id, case_id, lesion_id, view),
        FOREIGN KEY (study_id, case_id) REFERENCES study_cases(study_id, case_id)
    );
    CREATE TABLE study_scoring (
        study_id INTEGER PRIMARY KEY REFERENCES studies(study_id),
        distance_mm REAL NOT NULL CHECK (distance_mm >= 0),
        use_outline INTEGER NOT NULL DEFAULT 1 CHECK (use_outline IN (0, 1))
    );
    """,
    # the calibration a study's model scores were put on the reader's scale with (the site's recalibration,
    # else the model card's), recorded with the scores so that the study's calibrated hybrid can be recomputed
    # and says on what it rests; a model without a row is uncalibrated (every study made before)
    8: """
    CREATE TABLE study_model_calibrations (
        study_id INTEGER NOT NULL,
        model_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('site', 'card')),
        calibration_json TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (study_id, model_id),
        FOREIGN KEY (study_id, model_id) REFERENCES study_models(study_id, model_id)
    );
    """,
    # INSERT OR REPLACE deletes the row it replaces without firing the DELETE triggers (SQLite fires them only
    # with recursive_triggers on), so a final row could be overwritten by an insert: each insert over a final
    # row is refused now. A reveal is final too (it keeps its first time, and is never changed or deleted).
    9: """
    CREATE TRIGGER committed_reads_are_final_insert BEFORE INSERT ON study_reads
    WHEN EXISTS (SELECT 1 FROM study_reads WHERE study_id = NEW.study_id AND reader = NEW.reader
        AND case_id = NEW.case_id AND modality = NEW.modality AND breast = NEW.breast)
    AND NOT (NEW.modality = 'unaided' AND EXISTS (  -- no_unaided_after_reveal says why, more exactly
        SELECT 1 FROM reveals WHERE study_id = NEW.study_id AND reader = NEW.reader AND case_id = NEW.case_id))
    BEGIN SELECT RAISE(ABORT, 'a committed read cannot be replaced'); END;
    CREATE TRIGGER study_marks_are_final_insert BEFORE INSERT ON study_marks
    WHEN EXISTS (SELECT 1 FROM study_marks WHERE study_id = NEW.study_id AND reader = NEW.reader
        AND case_id = NEW.case_id AND modality = NEW.modality AND mark_id = NEW.mark_id)
    BEGIN SELECT RAISE(ABORT, 'a committed mark cannot be replaced'); END;
    CREATE TRIGGER committed_exam_reads_are_final_insert BEFORE INSERT ON exam_reads
    WHEN EXISTS (SELECT 1 FROM exam_reads WHERE exam_key = NEW.exam_key AND reader = NEW.reader
        AND breast = NEW.breast AND committed = 1)
    BEGIN SELECT RAISE(ABORT, 'a committed read cannot be changed: a later change is an amendment'); END;
    CREATE TRIGGER amendments_are_final_insert BEFORE INSERT ON exam_read_amendments
    WHEN EXISTS (SELECT 1 FROM exam_read_amendments WHERE exam_key = NEW.exam_key AND reader = NEW.reader
        AND breast = NEW.breast AND amended_at = NEW.amended_at)
    BEGIN SELECT RAISE(ABORT, 'an amendment cannot be replaced'); END;
    CREATE TRIGGER reveals_are_final_update BEFORE UPDATE ON reveals
    BEGIN SELECT RAISE(ABORT, 'a reveal cannot be changed: it is when the reader first saw the AI'); END;
    CREATE TRIGGER reveals_are_final_delete BEFORE DELETE ON reveals
    BEGIN SELECT RAISE(ABORT, 'a reveal cannot be deleted: it is when the reader first saw the AI'); END;
    CREATE TRIGGER reveals_keep_their_first_time BEFORE INSERT ON reveals
    WHEN EXISTS (SELECT 1 FROM reveals WHERE study_id = NEW.study_id AND reader = NEW.reader
        AND case_id = NEW.case_id)
    BEGIN SELECT RAISE(IGNORE); END;
    """,
    # the design decides which readings a study records and in what order. A read of a modality the design
    # does not have (a concurrent read in a sequential study, even before the case's unaided read) was stored
    # and analysed; so were a reveal outside the sequential design (whose reveal needs the reader's unaided
    # read of the case, so a reader and a case of the study), a read by someone who is not a reader of the
    # study, a mark without its read, and a crossover's second session begun before the reader had finished
    # the first or inside the washout after its last reading. Triggers only: the rows already stored stay as
    # they are.
    10: """
    CREATE TRIGGER unaided_design_reads_unaided_only BEFORE INSERT ON study_reads
    WHEN NEW.modality != 'unaided' AND (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'unaided'
    BEGIN SELECT RAISE(ABORT, 'an unaided study records unaided reads only (its design shows no AI)'); END;
    CREATE TRIGGER sequential_design_reads_unaided_then_aided BEFORE INSERT ON study_reads
    WHEN NEW.modality NOT IN ('unaided', 'aided')
    AND (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'sequential'
    BEGIN SELECT RAISE(ABORT, 'a sequential study records an unaided read, then an aided one once the AI is shown'); END;
    CREATE TRIGGER concurrent_design_reads_concurrent_only BEFORE INSERT ON study_reads
    WHEN NEW.modality != 'concurrent' AND (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'concurrent'
    BEGIN SELECT RAISE(ABORT, 'a concurrent study records concurrent reads only (the AI is shown from the start)'); END;
    CREATE TRIGGER crossover_design_reads_unaided_and_concurrent BEFORE INSERT ON study_reads
    WHEN NEW.modality NOT IN ('unaided', 'concurrent')
    AND (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'crossover'
    BEGIN SELECT RAISE(ABORT, 'a crossover study records unaided and concurrent reads only'); END;
    CREATE TRIGGER study_reads_by_the_study_s_readers BEFORE INSERT ON study_reads
    WHEN NOT EXISTS (SELECT 1 FROM study_readers WHERE study_id = NEW.study_id AND reader = NEW.reader)
    BEGIN SELECT RAISE(ABORT, 'the reader is not a reader of this study'); END;
    CREATE TRIGGER crossover_read_has_its_place_in_the_plan BEFORE INSERT ON study_reads
    WHEN (SELECT design FROM studies WHERE study_id = NEW.study_id) = 'crossover' AND NOT EXISTS (
        SELECT 1 FROM crossover_arms WHERE study_id = NEW.study_id AND reader = NEW.reader AND case_id = NEW.case_id)
    BEGIN SELECT RAISE(ABORT, 'this case has no place in the reader''s crossover plan'); END;
    CREATE TRIGGER crossover_session_two_follows_session_one BEFORE INSERT ON study_reads
    WHEN EXISTS (
        SELECT 1 FROM crossover_arms a WHERE a.study_id = NEW.study_id AND a.reader = NEW.reader
        AND a.case_id = NEW.case_id AND a.first_modality != NEW.modality)
    AND EXISTS (  -- the case's first reading is there (crossover_first_read_follows_the_plan says when it is not)
        SELECT 1 FROM study_reads r WHERE r.study_id = NEW.study_id AND r.reader = NEW.reader
        AND r.case_id = NEW.case_id AND r.modality != NEW.modality)
    AND EXISTS (
        SELECT 1 FROM crossover_arms a WHERE a.study_id = NEW.study_id AND a.reader = NEW.reader AND (
            SELECT COUNT(*) FROM study_reads r WHERE r.study_id = a.study_id AND r.reader = a.reader
            AND r.case_id = a.case_id AND r.modality = a.first_modality) < 2)
    BEGIN SELECT RAISE(ABORT, 'session 2 of the crossover opens when the reader has finished session 1'); END;
    CREATE TRIGGER crossover_washout_after_session_one BEFORE INSERT ON study_reads
    WHEN EXISTS (
        SELECT 1 FROM crossover_arms a WHERE a.study_id = NEW.study_id AND a.reader = NEW.reader
        AND a.case_id = NEW.case_id AND a.first_modality != NEW.modality)
    AND EXISTS (
        SELECT 1 FROM study_reads r WHERE r.study_id = NEW.study_id AND r.reader = NEW.reader
        AND r.case_id = NEW.case_id AND r.modality != NEW.modality)
    AND (SELECT MAX(r.committed_at) FROM study_reads r JOIN crossover_arms a ON a.study_id = r.study_id
        AND a.reader = r.reader AND a.case_id = r.case_id AND a.first_modality = r.modality
        WHERE r.study_id = NEW.study_id AND r.reader = NEW.reader)
        > (julianday('now') - 2440587.5) * 86400.0
            - 86400.0 * (SELECT washout_days FROM studies WHERE study_id = NEW.study_id)
    BEGIN SELECT RAISE(ABORT, 'the washout after the reader''s last session-1 reading has not passed yet'); END;
    CREATE TRIGGER reveals_in_the_sequential_design_only BEFORE INSERT ON reveals
    WHEN (SELECT design FROM studies WHERE study_id = NEW.study_id) IS NOT 'sequential'
    BEGIN SELECT RAISE(ABORT, 'the AI is shown after the unaided read in the sequential design only'); END;
    CREATE TRIGGER study_marks_come_with_their_read BEFORE INSERT ON study_marks
    WHEN NOT EXISTS (SELECT 1 FROM study_reads WHERE study_id = NEW.study_id AND reader = NEW.reader
        AND case_id = NEW.case_id AND modality = NEW.modality)
    BEGIN SELECT RAISE(ABORT, 'a mark is committed with its read: this reading has no committed read'); END;
    """,
    # a committed read stays with its study, case and reader. The app's connections enforce the foreign keys,
    # but a connection without them (the sqlite3 shell's default) could delete or rename a case, a reader or a
    # study under its reads, point a read case at other images or make it a training case (INSERT OR REPLACE
    # deletes without the DELETE triggers), and the analysis then left those reads out or counted them against
    # another exam. A case's truth may still be corrected (a pathology result that came later)
    11: """
    CREATE TRIGGER cases_with_reads_stay_delete BEFORE DELETE ON study_cases
    WHEN EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id AND case_id = OLD.case_id)
    BEGIN SELECT RAISE(ABORT, 'a case with committed reads cannot be removed'); END;
    CREATE TRIGGER cases_with_reads_stay_update BEFORE UPDATE OF study_id, case_id, exam_path, training
    ON study_cases
    WHEN (NEW.study_id IS NOT OLD.study_id OR NEW.case_id IS NOT OLD.case_id OR NEW.exam_path IS NOT OLD.exam_path
        OR NEW.training IS NOT OLD.training)
    AND EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id AND case_id = OLD.case_id)
    BEGIN SELECT RAISE(ABORT, 'a case with committed reads keeps its name, its exam and its place in the study'); END;
    CREATE TRIGGER cases_with_reads_stay_insert BEFORE INSERT ON study_cases
    WHEN EXISTS (SELECT 1 FROM study_reads WHERE study_id = NEW.study_id AND case_id = NEW.case_id)
    BEGIN SELECT RAISE(ABORT, 'a case with committed reads cannot be replaced'); END;
    CREATE TRIGGER readers_with_reads_stay_delete BEFORE DELETE ON study_readers
    WHEN EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id AND reader = OLD.reader)
    BEGIN SELECT RAISE(ABORT, 'a reader with committed reads cannot be removed'); END;
    CREATE TRIGGER readers_with_reads_stay_update BEFORE UPDATE OF study_id, reader ON study_readers
    WHEN (NEW.study_id IS NOT OLD.study_id OR NEW.reader IS NOT OLD.reader)
    AND EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id AND reader = OLD.reader)
    BEGIN SELECT RAISE(ABORT, 'a reader with committed reads keeps their name'); END;
    CREATE TRIGGER studies_with_reads_stay_delete BEFORE DELETE ON studies
    WHEN EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id)
    BEGIN SELECT RAISE(ABORT, 'a study with committed reads cannot be removed'); END;
    CREATE TRIGGER studies_with_reads_stay_update BEFORE UPDATE OF study_id, design ON studies
    WHEN (NEW.study_id IS NOT OLD.study_id OR NEW.design IS NOT OLD.design)
    AND EXISTS (SELECT 1 FROM study_reads WHERE study_id = OLD.study_id)
    BEGIN SELECT RAISE(ABORT, 'a study with committed reads keeps its number and its design'); END;
    CREATE TRIGGER studies_with_reads_stay_insert BEFORE INSERT ON studies
    WHEN EXISTS (SELECT 1 FROM study_reads WHERE study_id = NEW.study_id)
    BEGIN SELECT RAISE(ABORT, 'a study with committed reads cannot be replaced'); END;
    """,
    # the workstation's marks made before the first read was committed are part of it (the blind read): Shift+K
    # after the commit deleted one and the report lost it, and every change re-stamped every mark, so a mark made
    # after the model was shown could not be told from one made blind. A mark made after the commit is marked
    # as such (after_ai); the blind ones can no longer be removed, changed or re-stamped once the read is
    # committed, from any connection. Marks stored before this version are taken as blind.
    12: """
    ALTER TABLE exam_marks ADD COLUMN after_ai INTEGER NOT NULL DEFAULT 0 CHECK (after_ai IN (0, 1));
    CREATE TRIGGER blind_marks_of_a_committed_read_stay_delete BEFORE DELETE ON exam_marks
    WHEN OLD.after_ai = 0 AND EXISTS (SELECT 1 FROM exam_reads WHERE exam_key = OLD.exam_key
        AND reader = OLD.reader AND committed = 1)
    BEGIN SELECT RAISE(ABORT, 'a mark of a committed read is final'); END;
    CREATE TRIGGER blind_marks_of_a_committed_read_stay_update BEFORE UPDATE ON exam_marks
    WHEN OLD.after_ai = 0 AND EXISTS (SELECT 1 FROM exam_reads WHERE exam_key = OLD.exam_key
        AND reader = OLD.reader AND committed = 1)
    BEGIN SELECT RAISE(ABORT, 'a mark of a committed read is final'); END;
    CREATE TRIGGER marks_after_a_commit_are_after_ai BEFORE INSERT ON exam_marks
    WHEN NEW.after_ai = 0 AND EXISTS (SELECT 1 FROM exam_reads WHERE exam_key = NEW.exam_key
        AND reader = NEW.reader AND committed = 1)
    BEGIN SELECT RAISE(ABORT, 'a mark made after the read was committed is a mark after AI'); END;
    """,
    # with blind reading off the first read can be made with the model on screen: it was labelled "before AI" in
    # the panel, the PDF and the JSON. Whether the model was shown when the read was committed: 1 shown, 0 not,
    # NULL for reads stored before this version (not known)
    13: """
    ALTER TABLE exam_reads ADD COLUMN ai_shown INTEGER CHECK (ai_shown IN (0, 1));
    """,
    14: SHOWN_SCORE_TRIGGERS,  # a shown AI score stays as shown (the constant says why)
    # 14 was first written with triggers that refused a shown score's result key too (study scores after an
    # import failed outright): a store made then gets the triggers as they are now
    15: """
    DROP TRIGGER IF EXISTS shown_model_scores_stay_update;
    DROP TRIGGER IF EXISTS shown_model_scores_stay_delete;
    DROP TRIGGER IF EXISTS shown_model_scores_stay_insert;
    """ + SHOWN_SCORE_TRIGGERS,
    # the worklist's read exams keep the digest of the files their read was made on (app/worklist.py: a folder
    # refilled with another patient's exam is "changed since read"). Numbered, so that an older app refuses this
    # store instead of failing its five-value inserts; rebuilt (whatever columns it had), made first where absent
    16: """
    CREATE TABLE IF NOT EXISTS worklist_states (
        location TEXT NOT NULL,
        reader TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('unread', 'in progress', 'read', 'flagged')),
        reading_seconds REAL NOT NULL DEFAULT 0 CHECK (reading_seconds >= 0),
        updated_at REAL NOT NULL,
        PRIMARY KEY (location, reader)
    );
    CREATE TABLE worklist_states_v16 (
        location TEXT NOT NULL,
        reader TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('unread', 'in progress', 'read', 'flagged')),
        reading_seconds REAL NOT NULL DEFAULT 0 CHECK (reading_seconds >= 0),
        updated_at REAL NOT NULL,
        files TEXT,
        PRIMARY KEY (location, reader)
    );
    INSERT INTO worklist_states_v16 (location, reader, state, reading_seconds, updated_at)
        SELECT location, reader, state, reading_seconds, updated_at FROM worklist_states;
    DROP TABLE worklist_states;
    ALTER TABLE worklist_states_v16 RENAME TO worklist_states;
    """,
    # a change the reader made after the commit and has not recorded yet (the "Record your change?" question),
    # kept as it is typed: it was in memory only, and a crash lost it without a trace. Never a read of its own:
    # the committed read and its amendments stay what the hybrid and the reports use
    17: """
    CREATE TABLE IF NOT EXISTS exam_read_pending_changes (
        exam_key TEXT NOT NULL,
        reader TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        malignant REAL CHECK (malignant IS NULL OR malignant BETWEEN 0 AND 1),
        benign REAL CHECK (benign IS NULL OR benign BETWEEN 0 AND 1),
        birads TEXT NOT NULL DEFAULT '',
        density TEXT NOT NULL DEFAULT '',
        recommendation TEXT NOT NULL DEFAULT '',
        saved_at REAL NOT NULL,
        PRIMARY KEY (exam_key, reader, breast)
    );
    """,
    # where the exam with a pending change was read from (its worklist location) and the digest of its files
    # there: after a crash the worklist listed it "read" and nothing pointed the reader back to the change kept in
    # it; the digest tells the same exam from another patient's put in its folder since. Rebuilt, as 16: a store
    # created by a build that made this table with the columns already (tests make such stores) refused an ALTER
    18: """
    CREATE TABLE exam_read_pending_changes_v18 (
        exam_key TEXT NOT NULL,
        reader TEXT NOT NULL,
        breast TEXT NOT NULL CHECK (breast IN ('L', 'R')),
        malignant REAL CHECK (malignant IS NULL OR malignant BETWEEN 0 AND 1),
        benign REAL CHECK (benign IS NULL OR benign BETWEEN 0 AND 1),
        birads TEXT NOT NULL DEFAULT '',
        density TEXT NOT NULL DEFAULT '',
        recommendation TEXT NOT NULL DEFAULT '',
        saved_at REAL NOT NULL,
        location TEXT NOT NULL DEFAULT '',
        files TEXT,
        PRIMARY KEY (exam_key, reader, breast)
    );
    INSERT INTO exam_read_pending_changes_v18 (exam_key, reader, breast, malignant, benign, birads, density,
                                               recommendation, saved_at)
        SELECT exam_key, reader, breast, malignant, benign, birads, density, recommendation, saved_at
        FROM exam_read_pending_changes;
    DROP TABLE exam_read_pending_changes;
    ALTER TABLE exam_read_pending_changes_v18 RENAME TO exam_read_pending_changes;
    """,
}


# The reading worklist's states and reading time per exam and reader (app/worklist.py): created IF NOT EXISTS on
# every open, whatever the schema version (its files column came with migration 16).
WORKLIST_TABLE = """
CREATE TABLE IF NOT EXISTS worklist_states (
    location TEXT NOT NULL,
    reader TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('unread', 'in progress', 'read', 'flagged')),
    reading_seconds REAL NOT NULL DEFAULT 0 CHECK (reading_seconds >= 0),
    updated_at REAL NOT NULL,
    files TEXT,
    PRIMARY KEY (location, reader)
)
"""


def ensure_worklist_table(db: sqlite3.Connection) -> None:
    """The worklist's table, when the store lacks it."""
    db.execute(WORKLIST_TABLE)


def shown_result_exists(study: str, case: str) -> str:
    """SQL that is true when a study case's first model (the one its reading screen shows) has a stored result;
    ``study`` and ``case`` are the SQL that names them (``?`` or a column). One condition for the reading path's
    refusal and the coordinator's list of cases still without one."""
    return ("EXISTS (SELECT 1 FROM model_scores s JOIN analysis_results r ON r.result_key = s.result_key "
            f"WHERE s.study_id = {study} AND s.case_id = {case} AND s.model_id = ("
            f"SELECT m.model_id FROM study_models m WHERE m.study_id = {study} ORDER BY m.rowid LIMIT 1))")


SHOWN_SCORE_TOLERANCE = 1e-4  # another machine's last digits (a GPU, another oneDNN kernel), not another model


def write_model_score(db, study_id: int, case_id: str, breast: str, model_id: str, malignant: float | None,
                      probabilities_json: str | None, result_key: str, missing_reason: str) -> bool:
    """Store one breast's model score. A score a reader has been shown (the case revealed, or read aided or
    concurrent) stays as shown: within ``SHOWN_SCORE_TOLERANCE`` of the new one it gets the new ``result_key``
    (study scores after an import: the export has the scores without the maps); beyond it nothing is stored and
    False is returned, for the caller to say (other numbers than the readers saw: another mode, other weights)."""
    shown = db.execute(
        "SELECT malignant, probabilities_json, missing_reason FROM model_scores WHERE study_id = ? AND case_id = ? "
        "AND breast = ? AND model_id = ? AND (EXISTS (SELECT 1 FROM reveals WHERE study_id = ? AND case_id = ?) "
        "OR EXISTS (SELECT 1 FROM study_reads WHERE study_id = ? AND case_id = ? AND modality IN "
        "('aided', 'concurrent')))",
        (study_id, case_id, breast, model_id, study_id, case_id, study_id, case_id)).fetchone()
    if shown is None:
        db.execute("INSERT OR REPLACE INTO model_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (study_id, case_id, breast, model_id, malignant, probabilities_json, result_key, missing_reason))
        return True
    if not _same_score(shown, (malignant, probabilities_json, missing_reason)):
        return False
    if result_key:
        db.execute("UPDATE model_scores SET result_key = ? WHERE study_id = ? AND case_id = ? AND breast = ? "
                   "AND model_id = ?", (result_key, study_id, case_id, breast, model_id))
    return True


def _same_score(shown: tuple, new: tuple) -> bool:
    """(malignant, probabilities JSON, missing reason) alike within ``SHOWN_SCORE_TOLERANCE``."""
    def close(a, b) -> bool:
        return (a is None and b is None) or (a is not None and b is not None
                                            and abs(float(a) - float(b)) <= SHOWN_SCORE_TOLERANCE)

    first, second = (json.loads(text) if text else {} for text in (shown[1], new[1]))
    return (close(shown[0], new[0]) and shown[2] == new[2] and set(first) == set(second)
            and all(close(first[name], second[name]) for name in first))


@dataclass(frozen=True)
class BreastRead:
    """A reader's estimate for one breast: probability of malignancy (and optionally benign), the BI-RADS
    assessment category, breast density (BI-RADS a-d) and the recommendation.

    The first committed read is final (the hybrid and the reports use it); a change made after the model was
    shown is an ``amendment`` beside it, itself a ``BreastRead`` with its own ``recorded_at``."""

    breast: str
    malignant: float | None
    benign: float | None = None
    birads: str = ""
    committed: bool = False
    density: str = ""
    recommendation: str = ""
    recorded_at: float | None = None  # when it was committed (or amended), seconds since the epoch
    amendment: BreastRead | None = None  # on a committed first read: the latest read amended after AI
    earlier_amendments: tuple[BreastRead, ...] = ()  # the amendments before ``amendment``, oldest first
    ai_shown: bool | None = None  # a first read made with the model on screen (blind reading off); None: not known

    def says_something(self) -> bool:
        """A probability, a BI-RADS, a density or a recommendation given (not an empty form's read)."""
        return any(value not in (None, "") for value in (self.malignant, self.benign, self.birads, self.density,
                                                          self.recommendation))

    def same_answer(self, other: BreastRead) -> bool:
        """The same estimate, assessment, density and recommendation (whatever was stored when)."""
        return (self.malignant, self.benign, self.birads, self.density, self.recommendation) == (
            other.malignant, other.benign, other.birads, other.density, other.recommendation)


MARK_LABELS = ("mass", "calcifications", "asymmetry", "architectural distortion", "other")


@dataclass(frozen=True)
class ReaderMark:
    """A point the reader marked on a view (original image pixels), with a label and a confidence 1-5."""

    view: str
    row: float
    col: float
    label: str
    confidence: int
    after_ai: bool = False  # made with the model on screen: after the commit, or with blind-first off (workstation)


class ForeignDatabaseError(sqlite3.DatabaseError):
    """The file is no Mammo Reader store (another program's SQLite database, or no SQLite database at all)."""


OUR_TABLES = frozenset({"exam_reads", "studies"})  # made by the first migration, in every version since


def foreign_database(path: Path) -> str:
    """Why ``path`` is no store this app may open and migrate ("" when it is one, or is new or empty): a study
    command given another program's SQLite file (``study --db``) added our 19 tables to it and set it to WAL mode,
    though it only said "no study named …"."""
    try:
        if path.stat().st_size == 0:
            return ""
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return ""  # none yet, or unreadable: the connection says so in its own words
    if head != b"SQLite format 3\x00":
        return "not an SQLite database"
    try:
        # immutable: no lock, and no -shm or -wal left beside another program's WAL database (a read-only open made
        # them); only the table names are read
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, timeout=30)
        try:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        finally:
            db.close()
    except sqlite3.Error:
        return ""  # damaged or locked: the connection says so
    if tables and not OUR_TABLES <= tables:
        named = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
        return f"an SQLite database that Mammo Reader did not make (it holds the table(s) {named})"
    return ""


class StoreClosedError(RuntimeError):
    """Work was submitted after the store was closed (the application is shutting down)."""


class CommittedReadError(MammoError, ValueError):
    """A committed first read was to be overwritten, or an amendment has no committed read to amend."""


class Store:
    """SQLite store with a single writer thread. Reads run on the caller's thread on their own connection."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        refused = foreign_database(self.path)
        if refused:  # before any connection: one sets WAL mode, and the migrations would add our tables to it
            raise ForeignDatabaseError(f"{refused}; it was left as it was")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._local = threading.local()
        self._closed = False
        self._writer.submit(self._migrate).result()

    def _connect(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._local.connection = connection
        return connection

    def _migrate(self) -> None:
        db = self._connect()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: the database was written by a newer Mammo Reader (schema {version}); update the app"
            )
        db.execute("PRAGMA foreign_keys=OFF")  # a migration may rebuild a referenced table
        try:
            for target in range(version + 1, SCHEMA_VERSION + 1):
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(MIGRATIONS[target]):
                        db.execute(statement)
                    broken = db.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"{self.path}: migration to schema {target} broke {len(broken)} reference(s)")
                    db.execute(f"PRAGMA user_version={target}")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                logger.info("store migrated to schema %d", target)
        finally:
            db.execute("PRAGMA foreign_keys=ON")
        # tables created IF NOT EXISTS on every open take no schema version, so they never clash with a
        # numbered migration (the worklist's states, app/worklist.py)
        ensure_worklist_table(db)

    def submit(self, work: Callable[[sqlite3.Connection], Any]) -> Future:
        """Run ``work(connection)`` inside one transaction on the writer thread."""

        def run() -> Any:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                value = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return value

        if self._closed:
            raise StoreClosedError(f"the store {self.path.name} is closed; nothing more can be saved to it")
        return self._writer.submit(run)

    def read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        return self._connect().execute(sql, parameters).fetchall()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Finish every write already submitted, then refuse new ones."""
        self._closed = True
        self._writer.shutdown(wait=True)

    # -- the workstation's own tables ---------------------------------------------------------------------

    def save_reads(self, exam_key: str, reader: str, reads: list[BreastRead]) -> Future:
        """Save a draft or commit the first read of each breast. A committed read is final: saving the same
        answer again does nothing, a different one fails with ``CommittedReadError`` (use ``amend_reads``)
        and writes nothing of the batch."""
        now = time.time()

        def work(db: sqlite3.Connection) -> None:
            for read in reads:
                stored = _first_read(db, exam_key, reader, read.breast)
                if stored is not None and stored.committed:
                    if read.same_answer(stored):
                        continue
                    raise CommittedReadError(
                        f"the committed read of the {_BREAST_NAMES[read.breast]} is final and was not changed; a "
                        "change after the model was shown is recorded as an amendment beside it", self.path)
                db.execute(
                    "INSERT INTO exam_reads (exam_key, reader, breast, malignant, benign, birads, committed, "
                    "updated_at, density, recommendation, ai_shown) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (exam_key, reader, breast) DO UPDATE SET malignant=excluded.malignant, "
                    "benign=excluded.benign, birads=excluded.birads, committed=excluded.committed, "
                    "updated_at=excluded.updated_at, density=excluded.density, recommendation=excluded.recommendation, "
                    "ai_shown=excluded.ai_shown",
                    (exam_key, reader, read.breast, read.malignant, read.benign, read.birads, int(read.committed), now,
                     read.density, read.recommendation, None if read.ai_shown is None else int(read.ai_shown)),
                )

        return self.submit(work)

    def amend_reads(self, exam_key: str, reader: str, reads: list[BreastRead]) -> Future:
        """Record each read that differs from the breast's latest one as a new, time-stamped amendment after
        AI beside the committed first read (which stays as it was). The future gives the amendments stored
        (``BreastRead`` with ``recorded_at``); a breast without a committed read fails the whole batch with
        ``CommittedReadError``."""
        now = time.time()

        def work(db: sqlite3.Connection) -> list[BreastRead]:
            stored_now = []
            for read in reads:
                first = _first_read(db, exam_key, reader, read.breast)
                if first is None or not first.committed:
                    raise CommittedReadError(
                        f"the {_BREAST_NAMES[read.breast]} has no committed read to amend: commit the first "
                        "read before changing it", self.path)
                latest = first.amendment or first
                if read.same_answer(latest):
                    continue
                at = max(now, (first.amendment.recorded_at + 1e-6) if first.amendment is not None else now)
                db.execute(
                    "INSERT INTO exam_read_amendments (exam_key, reader, breast, amended_at, malignant, benign, "
                    "birads, density, recommendation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (exam_key, reader, read.breast, at, read.malignant, read.benign, read.birads, read.density,
                     read.recommendation))
                stored_now.append(BreastRead(read.breast, read.malignant, read.benign, read.birads, True,
                                             read.density, read.recommendation, recorded_at=at))
            db.execute("DELETE FROM exam_read_pending_changes WHERE exam_key=? AND reader=?", (exam_key, reader))
            return stored_now

        return self.submit(work)

    def load_reads(self, exam_key: str, reader: str) -> dict[str, BreastRead]:
        """Each breast's first read (a draft, or the committed read the hybrid uses), with its amendments after
        AI attached when there are any (the latest as ``amendment``, the others in ``earlier_amendments``)."""
        db = self._connect()
        out = {}
        for (breast,) in db.execute("SELECT breast FROM exam_reads WHERE exam_key=? AND reader=?", (exam_key, reader)):
            out[breast] = _first_read(db, exam_key, reader, breast)
        return out

    def save_pending_change(self, exam_key: str, reader: str, reads: list[BreastRead], location: str = "",
                            files: str | None = None) -> Future:
        """Keep the reader's change after the commit, not recorded yet, as it stands (``reads``: the breasts whose
        form differs from their latest recorded read; none: nothing pending, e.g. discarded), with where the exam
        was read from (``location``: its worklist location; "" outside a list) and its files' digest there
        (``files``; None: not known). Recording it (``amend_reads``) removes it."""
        now = time.time()

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM exam_read_pending_changes WHERE exam_key=? AND reader=?", (exam_key, reader))
            for read in reads:
                db.execute("INSERT INTO exam_read_pending_changes (exam_key, reader, breast, malignant, benign, "
                           "birads, density, recommendation, saved_at, location, files) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (exam_key, reader, read.breast, read.malignant, read.benign, read.birads, read.density,
                            read.recommendation, now, location, files))

        return self.submit(work)

    def pending_change_locations(self, reader: str) -> dict[str, set[str | None]]:
        """Where the exams with a change of ``reader``'s kept, not recorded, were read from (worklist locations),
        each with the digests of the files the change was made on (None: not known)."""
        rows = self.read("SELECT DISTINCT location, files FROM exam_read_pending_changes WHERE reader=? AND "
                         "location != ''", (reader,))
        found: dict[str, set[str | None]] = {}
        for location, files in rows:
            found.setdefault(location, set()).add(files)
        return found

    def load_pending_change(self, exam_key: str, reader: str) -> dict[str, BreastRead]:
        """The change after the commit kept by ``save_pending_change`` (empty: none), by breast."""
        rows = self.read("SELECT breast, malignant, benign, birads, density, recommendation FROM "
                         "exam_read_pending_changes WHERE exam_key=? AND reader=?", (exam_key, reader))
        return {row[0]: BreastRead(row[0], row[1], row[2], row[3], True, row[4], row[5]) for row in rows}

    def load_amendments(self, exam_key: str, reader: str) -> list[BreastRead]:
        """Every amendment after AI of the reader on this exam, oldest first."""
        rows = self.read(
            f"SELECT {_AMENDMENT_COLUMNS} FROM exam_read_amendments WHERE exam_key=? AND reader=? "
            "ORDER BY amended_at", (exam_key, reader))
        return [_amendment(row) for row in rows]

    def save_marks(self, exam_key: str, reader: str, marks: list[ReaderMark]) -> Future:
        """Store the reader's marks on this exam: before the first read is committed they are replaced as they
        stand (editable until the commit); after it, the blind marks (``after_ai`` False) stay as committed, and
        the marks after AI are replaced. A mark keeps the time it was first stored."""
        now = time.time()

        def work(db: sqlite3.Connection) -> None:
            committed = db.execute("SELECT 1 FROM exam_reads WHERE exam_key=? AND reader=? AND committed=1 LIMIT 1",
                                   (exam_key, reader)).fetchone() is not None
            rows = db.execute("SELECT view, row, col, label, confidence, after_ai, created_at FROM exam_marks "
                              "WHERE exam_key=? AND reader=?", (exam_key, reader)).fetchall()
            stored = {(v, r, c, lab, conf, bool(a)): t for v, r, c, lab, conf, a, t in rows}
            blind = [m for m in marks if not m.after_ai]
            if committed:  # the very marks stored before the commit, not only as many (a stale window's others)
                kept = sorted(tuple(row[:5]) for row in rows if not row[5])
                if sorted((m.view, m.row, m.col, m.label, m.confidence) for m in blind) != kept:
                    raise CommittedReadError("the marks of the committed read are final: a mark made before the "
                                             "model was shown cannot be added, changed or taken back now", self.path)
                kept = len(kept)
                db.execute("DELETE FROM exam_marks WHERE exam_key=? AND reader=? AND after_ai=1", (exam_key, reader))
                first = kept + 1
                to_store = [m for m in marks if m.after_ai]
            else:
                db.execute("DELETE FROM exam_marks WHERE exam_key=? AND reader=?", (exam_key, reader))
                first, to_store = 1, marks
            for number, mark in enumerate(to_store, start=first):
                key = (mark.view, mark.row, mark.col, mark.label, mark.confidence, mark.after_ai)
                db.execute("INSERT INTO exam_marks (exam_key, reader, mark_id, view, row, col, label, confidence, "
                           "created_at, after_ai) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (exam_key, reader, number, *key[:5], stored.get(key, now), int(mark.after_ai)))

        return self.submit(work)

    def load_marks(self, exam_key: str, reader: str) -> list[ReaderMark]:
        rows = self.read("SELECT view, row, col, label, confidence, after_ai FROM exam_marks WHERE exam_key=? "
                         "AND reader=? ORDER BY after_ai, mark_id", (exam_key, reader))
        return [ReaderMark(*row[:5], after_ai=bool(row[5])) for row in rows]

    def save_result(self, result_key: str, result_json: str, maps: bytes) -> Future:
        """Store an analysis result (JSON text and its binary maps) under its key; durable when done."""
        return self.submit(lambda db: db.execute(
            "INSERT OR REPLACE INTO analysis_results VALUES (?, ?, ?, ?)", (result_key, result_json, maps, time.time())))

    def load_result(self, result_key: str) -> tuple[str, bytes] | None:
        """(JSON text, maps) of a stored result, or None."""
        rows = self.read("SELECT result_json, maps FROM analysis_results WHERE result_key=?", (result_key,))
        return (rows[0][0], bytes(rows[0][1])) if rows else None


_BREAST_NAMES = {"R": "right breast", "L": "left breast"}
_AMENDMENT_COLUMNS = "breast, malignant, benign, birads, density, recommendation, amended_at"


def _amendment(row: tuple) -> BreastRead:
    return BreastRead(row[0], row[1], row[2], row[3] or "", True, row[4] or "", row[5] or "", recorded_at=row[6])


def _first_read(db: sqlite3.Connection, exam_key: str, reader: str, breast: str) -> BreastRead | None:
    """The breast's read in ``exam_reads`` with its amendments attached (the latest, and the earlier ones), or
    None."""
    row = db.execute(
        "SELECT breast, malignant, benign, birads, committed, density, recommendation, updated_at, ai_shown "
        "FROM exam_reads WHERE exam_key=? AND reader=? AND breast=?", (exam_key, reader, breast)).fetchone()
    if row is None:
        return None
    amendments = [_amendment(a) for a in db.execute(
        f"SELECT {_AMENDMENT_COLUMNS} FROM exam_read_amendments WHERE exam_key=? AND reader=? AND breast=? "
        "ORDER BY amended_at", (exam_key, reader, breast))]
    committed = bool(row[4])
    return BreastRead(row[0], row[1], row[2], row[3] or "", committed, row[5] or "", row[6] or "",
                      recorded_at=row[7] if committed else None,
                      amendment=amendments[-1] if amendments else None, earlier_amendments=tuple(amendments[:-1]),
                      ai_shown=None if row[8] is None else bool(row[8]))


def _statements(script: str) -> list[str]:
    """Split a migration into statements; a trigger body (BEGIN ... END) stays whole."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        is_trigger = text.upper().startswith("CREATE TRIGGER")
        if (is_trigger and text.upper().endswith("END;")) or (not is_trigger and text.endswith(";")):
            statements.append(text.rstrip(";"))
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip().rstrip(";"))
    return statements

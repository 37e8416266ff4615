"""Numbered schema migrations. Never edit a released one: append a new one.

``PRAGMA user_version`` records how many have been applied. Each migration runs
in its own transaction, so a crash mid-upgrade leaves the previous version.
The schema covers the whole pipeline up front (docs/storage.md explains each
table) so later stages add rows, not tables.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the whole pipeline
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,            -- hash of model spec + resolved suite + limit + seed
        model TEXT NOT NULL,            -- canonical model spec
        suite TEXT NOT NULL,            -- suite name
        suite_hash TEXT NOT NULL,       -- hash of the resolved suite config
        status TEXT NOT NULL,           -- running | completed | failed | interrupted
        limit_n INTEGER,                -- --limit, NULL for all items
        seed INTEGER NOT NULL,
        n_samples INTEGER NOT NULL,
        manifest TEXT NOT NULL,         -- JSON: versions, hardware, git sha, suite config
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE requests (
        key TEXT PRIMARY KEY,           -- Request.key: hash of everything that changes the answer
        kind TEXT NOT NULL,             -- generate | loglikelihood
        model TEXT NOT NULL,
        payload TEXT NOT NULL,          -- JSON of the Request
        created_at TEXT NOT NULL
    );
    CREATE TABLE run_samples (
        run_id TEXT NOT NULL REFERENCES runs(id),
        sample_id TEXT NOT NULL,
        position INTEGER NOT NULL,      -- order in the suite, for stable output
        request_key TEXT NOT NULL REFERENCES requests(key),
        doc TEXT NOT NULL,              -- JSON of the data row
        target TEXT,                    -- JSON: reference answer or choice index
        choices TEXT,                   -- JSON list, multiple choice only
        PRIMARY KEY (run_id, sample_id)
    );
    CREATE INDEX run_samples_request ON run_samples(request_key);
    CREATE TABLE completions (
        request_key TEXT PRIMARY KEY REFERENCES requests(key),
        texts TEXT NOT NULL,            -- JSON list, n samples
        finish_reasons TEXT NOT NULL,
        loglikelihoods TEXT NOT NULL,   -- JSON list, one per continuation
        greedy_matches TEXT NOT NULL,
        continuation_tokens TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        latency_s REAL NOT NULL,
        backend TEXT NOT NULL,
        run_id TEXT NOT NULL,           -- the run that produced it (others may reuse it)
        created_at TEXT NOT NULL
    );
    CREATE TABLE request_errors (       -- failed attempts; never scored, kept for diagnosis
        id INTEGER PRIMARY KEY,
        request_key TEXT NOT NULL REFERENCES requests(key),
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,             -- ErrorKind
        message TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX request_errors_key ON request_errors(request_key);
    CREATE TABLE scores (
        run_id TEXT NOT NULL REFERENCES runs(id),
        sample_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        value REAL NOT NULL,
        extracted TEXT,                 -- the answer the metric read, for audit
        PRIMARY KEY (run_id, sample_id, metric)
    );
    CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs(id),
        metric TEXT NOT NULL,
        value REAL,                     -- NULL when no sample was scored (all failed)
        ci_low REAL,
        ci_high REAL,
        n INTEGER NOT NULL,
        n_errors INTEGER NOT NULL,
        PRIMARY KEY (run_id, metric)
    );
    CREATE TABLE models (               -- named systems: contestants and judges
        name TEXT PRIMARY KEY,          -- contestant label, import:<name>, or judge:<id>
        spec TEXT,                      -- model identity; NULL for imported answers and juries
        origin TEXT NOT NULL,           -- local | imported | judge
        meta TEXT NOT NULL,             -- JSON: runs, import source, judge template/policy/members
        created_at TEXT NOT NULL
    );
    CREATE TABLE judgments (            -- one judge's verdict on one answer or one ordered pair
        id INTEGER PRIMARY KEY,
        judge TEXT NOT NULL,            -- judge id: label + hash of model, template, settings
        mode TEXT NOT NULL,             -- single | pairwise
        suite TEXT NOT NULL,
        sample_id TEXT NOT NULL,
        model_a TEXT NOT NULL,          -- contestant name (the graded one when single)
        model_b TEXT,                   -- NULL for single grading
        swapped INTEGER NOT NULL,       -- 1 when model_b's answer was shown first
        run_a TEXT NOT NULL,            -- the runs whose answers were judged
        run_b TEXT,
        len_a INTEGER NOT NULL,         -- answer lengths in characters (length-bias report)
        len_b INTEGER,
        request_key TEXT NOT NULL REFERENCES requests(key),  -- the judge's first request
        retry_key TEXT REFERENCES requests(key),  -- the retry after a malformed verdict
        raw TEXT NOT NULL,              -- the judge's text that decided the row
        outcome TEXT,                   -- score "1".."10", or a>>b|a>b|tie|b>a|b>>a (for model_a)
        parse_error TEXT,               -- why no verdict could be read; such rows are excluded
        created_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX judgments_key ON judgments
        (judge, mode, suite, sample_id, model_a, COALESCE(model_b, ''), swapped);
    CREATE INDEX judgments_suite ON judgments(suite, sample_id);
    CREATE TABLE campaigns (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,             -- pairwise | single
        suite TEXT NOT NULL,            -- the suite its items come from (battles' category)
        config TEXT NOT NULL,           -- JSON: models, runs, votes per item, scale, guidelines
        created_at TEXT NOT NULL
    );
    CREATE TABLE campaign_items (
        id INTEGER PRIMARY KEY,
        campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
        sample_id TEXT NOT NULL,
        prompt TEXT NOT NULL,           -- copied in: a campaign never changes under its votes
        model_a TEXT NOT NULL,
        output_a TEXT NOT NULL,
        model_b TEXT,                   -- NULL for single rating
        output_b TEXT,
        gold TEXT,                      -- known answer (a | b | tie | both_bad | rating:<n>)
        target_votes INTEGER NOT NULL   -- distinct annotators wanted on this item
    );
    CREATE INDEX campaign_items_campaign ON campaign_items(campaign_id);
    CREATE TABLE annotators (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,             -- annotator | admin
        password_hash TEXT NOT NULL,    -- salted KDF hash, never the password
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE votes (                -- append-only: an undo is a new row superseding a vote
        id INTEGER PRIMARY KEY,
        campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
        item_id INTEGER NOT NULL REFERENCES campaign_items(id),
        annotator TEXT NOT NULL REFERENCES annotators(name),
        outcome TEXT NOT NULL,          -- a | b | tie | both_bad | rating:<n> | skip | undo
                                        -- (a and b name the item's model_a and model_b)
        left_is_a INTEGER,              -- how the pair was shown: 1 when model_a was on the left
        reason TEXT,                    -- optional reason or comment
        flags TEXT,                     -- JSON list: incorrect, harmful, refusal, other
        supersedes INTEGER REFERENCES votes(id),  -- the vote an undo cancels
        seconds REAL,                   -- time from serving the item to this row
        created_at TEXT NOT NULL
    );
    CREATE INDEX votes_campaign ON votes(campaign_id, id);
    CREATE INDEX votes_item_annotator ON votes(item_id, annotator);
    CREATE UNIQUE INDEX votes_one_undo ON votes(supersedes) WHERE outcome = 'undo';
    CREATE TABLE battles (
        id INTEGER PRIMARY KEY,
        model_a TEXT NOT NULL,
        model_b TEXT NOT NULL,
        outcome TEXT NOT NULL,          -- a | b | tie | tie_bad
        source TEXT NOT NULL,           -- human | judge:<id>
        category TEXT,                  -- suite or tag
        ref TEXT,                       -- vote id or judgment ids it came from
        created_at TEXT NOT NULL,
        UNIQUE (source, ref)
    );
    CREATE TABLE rating_snapshots (
        id INTEGER PRIMARY KEY,
        method TEXT NOT NULL,
        params TEXT NOT NULL,           -- JSON
        data_hash TEXT NOT NULL,        -- hash of the battles it was fitted on
        ratings TEXT NOT NULL,          -- JSON
        created_at TEXT NOT NULL
    );
    """,
    # 2: per-slice aggregates, per-invocation efficiency measurements, time to first token
    """
    ALTER TABLE completions ADD COLUMN ttft_s REAL;  -- time to first token; NULL when unmeasured
    CREATE TABLE slice_metrics (
        run_id TEXT NOT NULL REFERENCES runs(id),
        metric TEXT NOT NULL,
        slice TEXT NOT NULL,            -- what groups the items: a data field, or 'length'
        slice_group TEXT NOT NULL,      -- the field's value, or a length bucket
        value REAL,                     -- NULL when no item of the group was scored
        ci_low REAL,
        ci_high REAL,
        n INTEGER NOT NULL,
        n_errors INTEGER NOT NULL,
        PRIMARY KEY (run_id, metric, slice, slice_group)
    );
    CREATE TABLE run_invocations (      -- one row per `run` invocation that generated answers
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        backend TEXT NOT NULL,          -- model id the backend answered as
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        load_s REAL NOT NULL,           -- building the backend (loading the model)
        generate_s REAL NOT NULL,       -- wall time of generation, load excluded
        answers INTEGER NOT NULL,       -- completions this invocation stored
        errors INTEGER NOT NULL,        -- failed attempts it recorded
        prompt_tokens INTEGER NOT NULL, -- over the stored answers
        output_tokens INTEGER NOT NULL, -- generated tokens (+ scored continuation tokens)
        peak_rss_mb REAL,               -- process peak resident memory (getrusage)
        gpu_peak_mb REAL,               -- torch.cuda.max_memory_allocated; NULL without CUDA
        gpu_energy_j REAL               -- NVML energy counter difference; NULL without NVML
    );
    CREATE INDEX run_invocations_run ON run_invocations(run_id);
    """,
    # 3: review-app sessions in the database (a restart keeps annotators signed in)
    """
    CREATE TABLE review_sessions (
        token_hash TEXT PRIMARY KEY,    -- SHA-256 of the cookie's token; the token is never stored
        annotator TEXT NOT NULL REFERENCES annotators(name),
        created_at REAL NOT NULL,       -- unix seconds
        last_seen_at REAL NOT NULL,     -- refreshed at most once a minute
        expires_at REAL NOT NULL        -- absolute end, whatever the activity
    );
    CREATE INDEX review_sessions_annotator ON review_sessions(annotator);
    """,
    # 4: contamination signals per item (docs/beyond_accuracy.md)
    """
    CREATE TABLE contamination_checks ( -- one check of one run's items: what it read
        run_id TEXT NOT NULL REFERENCES runs(id),
        method TEXT NOT NULL,           -- 'ngram' or 'membership'
        params TEXT NOT NULL,           -- JSON: corpus files and fingerprint, n; model, k
        summary TEXT NOT NULL,          -- JSON: bytes read, seconds, items, flagged
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, method)
    );
    CREATE TABLE contamination_signals (
        run_id TEXT NOT NULL,
        method TEXT NOT NULL,
        sample_id TEXT NOT NULL,
        value REAL NOT NULL,            -- n-gram: coverage; membership: Min-K%++
        flagged INTEGER NOT NULL,       -- 1 when the check calls the item contaminated
        detail TEXT NOT NULL,           -- JSON: matched n-grams; Min-K%, perturbed score
        PRIMARY KEY (run_id, method, sample_id),
        FOREIGN KEY (run_id, method) REFERENCES contamination_checks(run_id, method)
    );
    """,
]

-- The fleet store. One schema for SQLite and PostgreSQL: `{blob}` and `{serial}` are the only
-- words that differ (BLOB / BYTEA; INTEGER PRIMARY KEY AUTOINCREMENT / BIGSERIAL PRIMARY KEY),
-- and `{summaries_key}` / `{partitioned}`: on PostgreSQL raw summaries are partitioned by day
-- of `window_end_ms` (store/retention.rs), so its key must hold that column too.
-- Times are milliseconds since the Unix epoch; booleans are 0/1 integers.

CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Raw summaries, exactly once per (device, boot, seq); body is the summary in postcard.
CREATE TABLE IF NOT EXISTS summaries (
    device_id TEXT NOT NULL,
    boot_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    body {blob} NOT NULL,
    PRIMARY KEY ({summaries_key})
){partitioned};
CREATE INDEX IF NOT EXISTS summaries_by_time ON summaries (device_id, window_end_ms);
CREATE INDEX IF NOT EXISTS summaries_by_age ON summaries (window_end_ms);

-- Per scope (`fleet`, `device:<id>`), step (60000, 3600000) and bucket: additive sums.
CREATE TABLE IF NOT EXISTS rollups (
    scope TEXT NOT NULL,
    step_ms BIGINT NOT NULL,
    t_ms BIGINT NOT NULL,
    summaries BIGINT NOT NULL,
    faces_seen BIGINT NOT NULL,
    dwell_s DOUBLE PRECISION NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    e0 DOUBLE PRECISION NOT NULL, e1 DOUBLE PRECISION NOT NULL, e2 DOUBLE PRECISION NOT NULL,
    e3 DOUBLE PRECISION NOT NULL, e4 DOUBLE PRECISION NOT NULL, e5 DOUBLE PRECISION NOT NULL,
    e6 DOUBLE PRECISION NOT NULL,
    va_weight DOUBLE PRECISION NOT NULL,
    valence DOUBLE PRECISION NOT NULL,
    arousal DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, step_ms, t_ms)
);

-- Completeness: per boot, summaries stored and the highest seq seen.
CREATE TABLE IF NOT EXISTS boots (
    device_id TEXT NOT NULL,
    boot_id BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    max_seq BIGINT NOT NULL,
    PRIMARY KEY (device_id, boot_id)
);

CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);

CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    online BIGINT,
    boot_id BIGINT,
    version TEXT,
    camera TEXT,
    microphone TEXT,
    last_error TEXT,
    models TEXT,
    last_summary TEXT,
    last_summary_ms BIGINT,
    malformed BIGINT NOT NULL DEFAULT 0,
    last_malformed TEXT
);

CREATE TABLE IF NOT EXISTS model_states (
    device_id TEXT NOT NULL,
    slot TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (device_id, slot)
);

CREATE TABLE IF NOT EXISTS device_groups (
    device_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    PRIMARY KEY (device_id, grp)
);
CREATE INDEX IF NOT EXISTS device_groups_by_group ON device_groups (grp);
CREATE TABLE IF NOT EXISTS device_tags (
    device_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
);

-- Feedback presses, once per (device, boot, press time).
CREATE TABLE IF NOT EXISTS feedback (
    device_id TEXT NOT NULL,
    boot_id BIGINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    model TEXT NOT NULL,
    dominant TEXT,
    agrees BIGINT,
    PRIMARY KEY (device_id, boot_id, ts_ms)
);
CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (ts_ms);

-- Per expression model: how much it was used (the denominator of the press rate).
CREATE TABLE IF NOT EXISTS model_usage (
    model TEXT PRIMARY KEY,
    summaries BIGINT NOT NULL,
    faces_seen BIGINT NOT NULL,
    dwell_s DOUBLE PRECISION NOT NULL
);

CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    phc TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id {serial},
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- Staged rollouts (store/rollouts.rs): the machine's state less its devices (JSON), guarded
-- by `version`; `active`: ticked by the driver (0 once a newer rollout of the group's slot
-- exists). One row per device (its entry as JSON), every decision, the uploaded package.
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY,
    grp TEXT NOT NULL,
    slot TEXT NOT NULL,
    model TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    phase TEXT NOT NULL,
    active BIGINT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollout_members (
    rollout_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stage BIGINT NOT NULL,
    progress TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE TABLE IF NOT EXISTS rollout_decisions (
    id {serial},
    rollout_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rollout_decisions_by_rollout ON rollout_decisions (rollout_id, id);
CREATE TABLE IF NOT EXISTS packages (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    body {blob} NOT NULL,
    created_ms BIGINT NOT NULL
);
-- Who drives rollouts: one holder until `expires_ms`, renewed every tick.
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- WhatStyle schema v1 (SQLite). Same logical schema as ../postgres/0001_init.sql: the seed's
-- ERD (users, conversations, training_jobs, analytics_events, api_keys) plus the outbox,
-- the audit log and the model registry. Timestamps are Unix milliseconds (INTEGER).
CREATE TABLE users (
    user_id           TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    phone_number      TEXT UNIQUE,
    created_at        INTEGER NOT NULL,
    last_active       INTEGER,
    model_version     TEXT,
    subscription_tier TEXT NOT NULL DEFAULT 'free',
    is_active         INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    hashed_key   TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    client_name  TEXT,
    role         TEXT NOT NULL CHECK (role IN ('user', 'admin', 'system')),
    rate_limit   INTEGER NOT NULL DEFAULT 0,
    is_active    INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE training_jobs (
    job_id            TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    status            TEXT NOT NULL
                      CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    progress          REAL NOT NULL DEFAULT 0,
    samples_processed INTEGER NOT NULL DEFAULT 0,
    params            TEXT,
    metrics           TEXT,
    error_message     TEXT,
    s3_data_path      TEXT,
    worker_id         TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    completed_at      INTEGER,
    updated_at        INTEGER NOT NULL,
    -- creation order (FIFO claims even within one millisecond); set by the insert
    seq               INTEGER NOT NULL
);
CREATE INDEX training_jobs_user ON training_jobs(user_id, created_at);
CREATE INDEX training_jobs_status ON training_jobs(status, seq);
CREATE INDEX training_jobs_seq ON training_jobs(seq);

CREATE TABLE conversations (
    conversation_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    message            TEXT NOT NULL,
    response           TEXT NOT NULL,
    confidence         REAL NOT NULL,
    processing_time_ms INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    model_version      TEXT
);
CREATE INDEX conversations_user_page ON conversations(user_id, created_at, conversation_id);

CREATE TABLE analytics_events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT REFERENCES users(user_id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    event_data TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX analytics_events_user ON analytics_events(user_id, created_at);

-- Transactional outbox: rows written in the same transaction as the state change they
-- announce; a relay publishes them (Kafka or the in-process bus) and sets published_at.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT NOT NULL,
    msg_key      TEXT,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX outbox_unpublished ON outbox(id) WHERE published_at IS NULL;

-- Who accessed whose personal data. No foreign key: entries may name unknown subjects.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    actor      TEXT NOT NULL,
    user_id    TEXT,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    detail     TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX audit_log_user ON audit_log(user_id, created_at);

CREATE TABLE models (
    user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    version       TEXT NOT NULL,
    artifact_path TEXT NOT NULL,
    job_id        TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, version)
);

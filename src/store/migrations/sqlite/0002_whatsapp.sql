-- WhatsApp channel (SQLite; same logical schema as ../postgres/0002_whatsapp.sql): the
-- webhook inbox (raw signed bodies, durable before the 200, deleted once processed), linked
-- business numbers (the access token lives sealed in the blobs), per-contact modes, every
-- message in and out (dedupe by wamid, statuses applied by rank) and the clone's drafts.
-- A user's rows go with the user (ON DELETE CASCADE). Timestamps are Unix milliseconds.
CREATE TABLE wa_inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    body        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE wa_links (
    phone_number_id TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    token_blob    TEXT NOT NULL,
    default_mode    TEXT NOT NULL CHECK (default_mode IN ('off', 'draft', 'auto')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX wa_links_user ON wa_links(user_id);

CREATE TABLE wa_contacts (
    phone_number_id TEXT NOT NULL REFERENCES wa_links(phone_number_id) ON DELETE CASCADE,
    contact         TEXT NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    mode            TEXT NOT NULL CHECK (mode IN ('off', 'draft', 'auto')),
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (phone_number_id, contact)
);

CREATE TABLE wa_messages (
    wamid           TEXT PRIMARY KEY,
    phone_number_id TEXT NOT NULL,
    user_id         TEXT REFERENCES users(user_id) ON DELETE CASCADE,
    direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    contact_phone   TEXT,
    contact_user_id TEXT,
    msg_type        TEXT,
    body            TEXT,
    media_id        TEXT,
    sent_at         INTEGER NOT NULL DEFAULT 0,
    status          TEXT,
    status_rank     INTEGER NOT NULL DEFAULT 0,
    error_code      INTEGER,
    error_title     TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX wa_messages_contact ON wa_messages(phone_number_id, contact_phone, contact_user_id, direction, sent_at);
CREATE INDEX wa_messages_user ON wa_messages(user_id, created_at);

CREATE TABLE wa_drafts (
    draft_id        TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    phone_number_id TEXT NOT NULL,
    contact_phone   TEXT,
    contact_user_id TEXT,
    in_wamid        TEXT NOT NULL UNIQUE,
    mode            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('generating', 'pending', 'queued', 'sent', 'failed', 'discarded')),
    reply           TEXT,
    confidence      REAL,
    reason          TEXT,
    error_code      INTEGER,
    error_message   TEXT,
    out_wamid       TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX wa_drafts_user ON wa_drafts(user_id, status, created_at);
CREATE INDEX wa_drafts_status ON wa_drafts(status, next_attempt_at);

-- Accounts: users, refresh tokens, API keys; the course catalogue and lesson progress.
-- Ids are text (UUIDs for users, tokens and keys; slugs for the catalogue) and
-- settings JSON-object text, as elsewhere, so one diesel schema serves both backends.

CREATE TABLE users (
    id                 TEXT PRIMARY KEY NOT NULL,
    -- stored lowercased, so UNIQUE is case-insensitive uniqueness
    email              TEXT NOT NULL UNIQUE,
    display_name       TEXT NOT NULL,
    -- argon2id PHC string
    password_hash      TEXT NOT NULL,
    role               TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    settings           TEXT NOT NULL DEFAULT '{}',
    -- written into access tokens; bumping it (log out everywhere, new
    -- password) makes every access token issued before invalid
    token_version      BIGINT NOT NULL DEFAULT 0,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);

-- Refresh tokens: only the SHA-256 of the token is stored. Each refresh
-- revokes the presented token and issues its successor in the same family;
-- presenting a revoked token revokes the whole family.
CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    family_id   TEXT NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP,
    replaced_by TEXT,
    created_at  TIMESTAMP NOT NULL
);

CREATE INDEX idx_refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX idx_refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX idx_refresh_tokens_expires ON refresh_tokens (expires_at);

-- API keys for programmatic clients: only the SHA-256 of the key is stored.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- the first characters of the key, shown to recognise it
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);

CREATE INDEX idx_api_keys_user ON api_keys (user_id, created_at);

-- The course catalogue: tracks -> modules -> lessons (Markdown), ordered by position.
CREATE TABLE tracks (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position    INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE modules (
    id       TEXT PRIMARY KEY NOT NULL,
    track_id TEXT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    title    TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX idx_modules_track ON modules (track_id, position);

CREATE TABLE lessons (
    id        TEXT PRIMARY KEY NOT NULL,
    module_id TEXT NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    title     TEXT NOT NULL,
    content   TEXT NOT NULL,
    position  INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX idx_lessons_module ON lessons (module_id, position);

-- Which lessons a user completed (and when, first).
CREATE TABLE lesson_progress (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    lesson_id    TEXT NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    completed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, lesson_id)
);

-- Cascade deletes of lessons look progress up by lesson.
CREATE INDEX idx_lesson_progress_lesson ON lesson_progress (lesson_id);

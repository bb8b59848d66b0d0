-- Admin sessions of the web pages. The cookie holds a random token; only
-- its SHA-256 is stored, so a copy of the database opens no session.
CREATE TABLE admin_sessions (
    token_hash TEXT    PRIMARY KEY,
    -- The CSRF token every form of this session must carry.
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ip         TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

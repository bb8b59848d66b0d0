-- Foundation: accounts, hub settings, and the audit log.
-- Times are Unix seconds (UTC). Addresses are stored in canonical form
-- (lower-case local part, ASCII/punycode domain, normalised IP literal).

CREATE TABLE accounts (
    id                  INTEGER PRIMARY KEY,
    address             TEXT    NOT NULL UNIQUE,
    password_hash       TEXT    NOT NULL,
    -- NULL: the hub-wide default quota applies.
    quota_bytes         INTEGER,
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
) STRICT;

-- Settings that the admin changes at run time (the config file holds only
-- what must be known before the database opens).
CREATE TABLE settings (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- What happened, for the dashboard and for the operator's questions later.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    subject TEXT,
    detail  TEXT
) STRICT;

CREATE INDEX events_at ON events (at);

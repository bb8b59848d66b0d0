-- Sync history: one row per sync with a peer (a live link, dialled or
-- answered), for the history page and `cairn sync`.
CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY,
    -- NULL once the peer is removed; its name stays for the record.
    peer_id     INTEGER REFERENCES peers (id) ON DELETE SET NULL,
    peer_name   TEXT    NOT NULL,
    carrier     TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    items_out   INTEGER NOT NULL DEFAULT 0,
    items_in    INTEGER NOT NULL DEFAULT 0,
    bytes_out   INTEGER NOT NULL DEFAULT 0,
    bytes_in    INTEGER NOT NULL DEFAULT 0,
    error       TEXT
) STRICT;

CREATE INDEX sync_runs_started ON sync_runs (started_at);

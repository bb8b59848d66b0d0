-- no-transaction
-- Classic peers: an Exim or Postfix node that takes and sends batch SMTP
-- (over NNCP, a pipe or a folder). They have no node key, so public_key
-- becomes optional, and they may name the NNCP node they are reached by.
--
-- SQLite cannot drop a NOT NULL constraint in place: the table is rebuilt
-- (sqlite.org/lang_altertable.html, "other kinds of table schema
-- changes"). Foreign keys are off while it happens, or dropping the old
-- table would cascade into routes; hence no surrounding migration
-- transaction (the PRAGMA is a no-op inside one) and our own BEGIN/COMMIT.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE peers_new (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    -- X25519 static key (Noise), 32 bytes; NULL for a classic peer.
    public_key       BLOB    UNIQUE CHECK (public_key IS NULL OR length(public_key) = 32),
    domains          TEXT    NOT NULL DEFAULT '[]',
    addresses        TEXT    NOT NULL DEFAULT '[]',
    kind             TEXT    NOT NULL DEFAULT 'cairn' CHECK (kind IN ('cairn', 'classic')),
    added_at         INTEGER NOT NULL,
    next_bundle_seq  INTEGER NOT NULL DEFAULT 1,
    last_sent_at     INTEGER,
    last_received_at INTEGER,
    -- The NNCP node (id or name) batches go to, and whose NNCP_SENDER id
    -- identifies batches coming from it.
    nncp_node        TEXT,
    CHECK (kind = 'classic' OR public_key IS NOT NULL)
) STRICT;
INSERT INTO peers_new (id, name, public_key, domains, addresses, kind, added_at,
                       next_bundle_seq, last_sent_at, last_received_at)
    SELECT id, name, public_key, domains, addresses, kind, added_at,
           next_bundle_seq, last_sent_at, last_received_at
    FROM peers;
DROP TABLE peers;
ALTER TABLE peers_new RENAME TO peers;
COMMIT;
PRAGMA foreign_keys = ON;

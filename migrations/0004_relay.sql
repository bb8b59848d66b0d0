-- Store-and-forward: peers, routes, custody of outbox items, seen items.

-- Other nodes this one exchanges bundles with, from their node cards.
CREATE TABLE peers (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    -- X25519 static key (Noise), 32 bytes.
    public_key       BLOB    NOT NULL UNIQUE CHECK (length(public_key) = 32),
    -- JSON arrays: the domains it hosts, where it may be reached.
    domains          TEXT    NOT NULL DEFAULT '[]',
    addresses        TEXT    NOT NULL DEFAULT '[]',
    kind             TEXT    NOT NULL DEFAULT 'cairn' CHECK (kind IN ('cairn', 'classic')),
    added_at         INTEGER NOT NULL,
    -- Counter of bundles made for this peer.
    next_bundle_seq  INTEGER NOT NULL DEFAULT 1,
    last_sent_at     INTEGER,
    last_received_at INTEGER
) STRICT;

-- Which peer is the next hop for a recipient domain; '*' is the default.
CREATE TABLE routes (
    domain  TEXT    PRIMARY KEY,
    peer_id INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE
) STRICT;

-- An outbox row is one item: (message, next hop). Until routed, peer_id is
-- NULL and state 'no-route'.
ALTER TABLE outbox ADD COLUMN peer_id INTEGER REFERENCES peers (id);
-- Content id (hex SHA-256 over envelope and body), set when routed.
ALTER TABLE outbox ADD COLUMN item_id TEXT;
-- Custody time before this node (summed over earlier hops), milliseconds.
ALTER TABLE outbox ADD COLUMN age_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN lifetime_ms INTEGER;
ALTER TABLE outbox ADD COLUMN hops INTEGER NOT NULL DEFAULT 0;

CREATE INDEX outbox_peer ON outbox (peer_id, state);
CREATE UNIQUE INDEX outbox_item_peer ON outbox (item_id, peer_id) WHERE item_id IS NOT NULL;

-- Items this node has taken custody of, so a second copy (another bundle,
-- another carrier) is acknowledged but never delivered again.
CREATE TABLE items_seen (
    item_id TEXT    PRIMARY KEY,
    peer_id INTEGER,
    seen_at INTEGER NOT NULL
) STRICT;

-- Acknowledgements owed to a peer: sent in the next bundle to it.
CREATE TABLE acks_due (
    peer_id INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    item_id TEXT    NOT NULL,
    PRIMARY KEY (peer_id, item_id)
) STRICT;

-- Bumped by a CLI command that changed mail beside a running hub (a bundle
-- import run by NNCP, say); the hub polls it and refreshes IDLE sessions.
CREATE TABLE wakeups (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;
INSERT INTO wakeups (id, n) VALUES (1, 0);

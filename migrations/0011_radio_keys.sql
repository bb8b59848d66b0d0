-- Autocrypt keys over the radio: a key goes to a peer in full once, then
-- by its SHA-256 (relay::keyref).

-- Sending side: keys a peer is known to hold, because it acknowledged an
-- item that carried them in full over a radio link.
CREATE TABLE keys_held (
    peer_id INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    digest  BLOB    NOT NULL,
    PRIMARY KEY (peer_id, digest)
) STRICT, WITHOUT ROWID;

-- Sending side: how an outbox item was written for the radio when its
-- transfer began (concatenated 32-byte digests of the keys it named by
-- reference and of those it carried), so a resumed transfer continues the
-- same bytes, and an acknowledgement makes its carried keys held.
CREATE TABLE item_forms (
    outbox_id INTEGER PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE,
    refs      BLOB    NOT NULL,
    marks     BLOB    NOT NULL
) STRICT;

-- Receiving side: keys a peer sent in full, exactly as they stood in the
-- header, to put back where its later items name them. Bounded per peer
-- (least recently used go first).
CREATE TABLE keys_learned (
    peer_id INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    digest  BLOB    NOT NULL,
    keydata BLOB    NOT NULL,
    used_at INTEGER NOT NULL,
    PRIMARY KEY (peer_id, digest)
) STRICT;

-- Bundles this node left in a folder (a USB stick, a Syncthing folder) and
-- has not seen taken yet: a newer bundle for the same peer replaces them,
-- and where the uplink says so, the peer deleting one after its import
-- counts as the peer's acknowledgement of the items it carried.
CREATE TABLE folder_bundles (
    dir        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    peer_id    INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    -- The folder's identity (the random id in its `.cairn-folder` file)
    -- when the bundle was written: an empty mount point or another stick
    -- has none or another, and then a missing bundle proves nothing.
    folder_id  TEXT    NOT NULL,
    -- JSON arrays of hex content ids: the items it carried and the
    -- acknowledgements it carried.
    items      TEXT    NOT NULL,
    acks       TEXT    NOT NULL,
    written_at INTEGER NOT NULL,
    PRIMARY KEY (dir, name)
) STRICT;

-- Whether a folder or USB uplink reads the peer deleting a bundle as the
-- acknowledgement (off by default: a person deleting files would lose mail).
ALTER TABLE uplinks ADD COLUMN deletion_acks INTEGER NOT NULL DEFAULT 0;

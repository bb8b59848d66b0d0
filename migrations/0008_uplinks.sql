-- Uplinks: how and when this node syncs with a peer. A peer may have
-- several (a live link and a USB stick's folder, say).
CREATE TABLE uplinks (
    id          INTEGER PRIMARY KEY,
    peer_id     INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    -- 'link': the peer's addresses over TCP; 'folder': a directory (a
    -- Syncthing folder, a shared drive); 'usb': a folder that counts only
    -- while something is mounted there; 'nncp': the peer's NNCP node;
    -- 'smtp': the Internet, by smarthost or MX (a gateway's Internet peer).
    carrier     TEXT    NOT NULL CHECK (carrier IN ('link', 'folder', 'usb', 'nncp', 'smtp')),
    -- The folder's path or the NNCP node; '' for a link.
    target      TEXT    NOT NULL DEFAULT '',
    -- 'always', 'manual', 'appear', or time windows ("mon-fri 08:00-18:00").
    schedule    TEXT    NOT NULL DEFAULT 'always',
    last_run_at INTEGER,
    last_ok_at  INTEGER,
    last_error  TEXT,
    UNIQUE (peer_id, carrier, target)
) STRICT;

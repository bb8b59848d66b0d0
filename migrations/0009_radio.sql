-- The radio: the duty-cycle ledger (one row per transmission, kept for an
-- hour so a restart cannot reset the count), link quality samples for the
-- radio page, and 'lora' as an uplink carrier.
CREATE TABLE radio_airtime (
    id          INTEGER PRIMARY KEY,
    -- The regulated sub-band's name ("eu868-g3").
    band        TEXT    NOT NULL,
    -- When the transmission started, Unix milliseconds.
    at_ms       INTEGER NOT NULL,
    airtime_us  INTEGER NOT NULL
) STRICT;

CREATE INDEX radio_airtime_band_at ON radio_airtime (band, at_ms);

CREATE TABLE radio_signal (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    peer_id     INTEGER REFERENCES peers (id) ON DELETE SET NULL,
    -- dBm and dB of a frame heard.
    rssi        INTEGER NOT NULL,
    snr         REAL    NOT NULL
) STRICT;

CREATE INDEX radio_signal_at ON radio_signal (at_ms);

-- SQLite cannot change a CHECK: rebuild uplinks with 'lora' allowed.
CREATE TABLE uplinks_new (
    id          INTEGER PRIMARY KEY,
    peer_id     INTEGER NOT NULL REFERENCES peers (id) ON DELETE CASCADE,
    -- 'link': the peer's addresses over TCP; 'folder': a directory (a
    -- Syncthing folder, a shared drive); 'usb': a folder that counts only
    -- while something is mounted there; 'nncp': the peer's NNCP node;
    -- 'smtp': the Internet, by smarthost or MX (a gateway's Internet peer);
    -- 'lora': the hub's radio.
    carrier     TEXT    NOT NULL CHECK (carrier IN ('link', 'folder', 'usb', 'nncp', 'smtp', 'lora')),
    target      TEXT    NOT NULL DEFAULT '',
    schedule    TEXT    NOT NULL DEFAULT 'always',
    last_run_at INTEGER,
    last_ok_at  INTEGER,
    last_error  TEXT,
    UNIQUE (peer_id, carrier, target)
) STRICT;

INSERT INTO uplinks_new (id, peer_id, carrier, target, schedule, last_run_at, last_ok_at, last_error)
    SELECT id, peer_id, carrier, target, schedule, last_run_at, last_ok_at, last_error FROM uplinks;
DROP TABLE uplinks;
ALTER TABLE uplinks_new RENAME TO uplinks;

-- Mail: mailboxes, content-addressed message blobs, messages, the outbox.

CREATE TABLE mailboxes (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    -- RFC 3501 §2.3.1.1: must change whenever UIDs could be reused.
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    -- RFC 7162 CONDSTORE: every change to a message in the mailbox bumps it.
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    subscribed    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
) STRICT;

-- Message bodies live in files named by the SHA-256 of their bytes; this
-- table counts the rows that use each file. Triggers keep `refs` true.
CREATE TABLE blobs (
    hash TEXT    PRIMARY KEY,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    -- Space-separated IMAP flags, e.g. "\Seen \Flagged".
    flags         TEXT    NOT NULL DEFAULT '',
    blob_hash     TEXT    NOT NULL REFERENCES blobs (hash),
    size          INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    UNIQUE (mailbox_id, uid)
) STRICT;

-- Mail that leaves this node: one item per message and next hop.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    blob_hash       TEXT    NOT NULL REFERENCES blobs (hash),
    -- The SMTP envelope: '' is the null reverse-path of a bounce.
    mail_from       TEXT    NOT NULL,
    -- JSON array of recipient addresses.
    rcpts           TEXT    NOT NULL,
    -- NULL until a route names the next node.
    next_hop        TEXT,
    state           TEXT    NOT NULL CHECK (state IN ('no-route', 'queued', 'in-flight', 'acknowledged', 'expired', 'held')),
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT
) STRICT;

CREATE INDEX outbox_state ON outbox (state, next_attempt_at);

CREATE TRIGGER messages_blob_ref AFTER INSERT ON messages BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE hash = NEW.blob_hash;
END;
CREATE TRIGGER messages_blob_unref AFTER DELETE ON messages BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE hash = OLD.blob_hash;
END;
CREATE TRIGGER outbox_blob_ref AFTER INSERT ON outbox BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE hash = NEW.blob_hash;
END;
CREATE TRIGGER outbox_blob_unref AFTER DELETE ON outbox BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE hash = OLD.blob_hash;
END;

-- Every account has an INBOX from the moment it exists.
CREATE TRIGGER accounts_inbox AFTER INSERT ON accounts BEGIN
    INSERT INTO mailboxes (account_id, name, uidvalidity)
    VALUES (NEW.id, 'INBOX',
            MAX(CAST(strftime('%s', 'now') AS INTEGER),
                (SELECT COALESCE(MAX(uidvalidity), 0) + 1 FROM mailboxes)));
END;

INSERT INTO mailboxes (account_id, name, uidvalidity)
SELECT id, 'INBOX', CAST(strftime('%s', 'now') AS INTEGER) + id FROM accounts;

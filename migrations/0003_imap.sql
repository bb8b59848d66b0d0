-- IMAP: per-account METADATA entries (RFC 5464 /private/...), and an index
-- for listing a mailbox's messages in UID order.

CREATE TABLE metadata (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    PRIMARY KEY (account_id, name)
) STRICT;

-- no-transaction
-- Account ids are never used twice, and every account carries the
-- generation of its credentials.
--
-- A session keeps the id of the account it logged in as and re-checks it
-- when accounts change. Without AUTOINCREMENT SQLite hands the highest
-- free id to the next account, so a removed account's open session would
-- have reached the next account created (sqlite.org/autoinc.html). The
-- generation goes up with every password change, so a session opened with
-- the old password is told to log in again.
--
-- AUTOINCREMENT cannot be added in place: the table is rebuilt, with
-- foreign keys off so dropping the old table does not cascade into
-- mailboxes and metadata (as migration 6 does for peers). Dropping the
-- table drops its trigger, which is made again.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE accounts_new (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    address             TEXT    NOT NULL UNIQUE,
    password_hash       TEXT    NOT NULL,
    -- NULL: the hub-wide default quota applies.
    quota_bytes         INTEGER,
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL,
    -- Raised by every password change; sessions of an older one end.
    generation          INTEGER NOT NULL DEFAULT 1
) STRICT;
INSERT INTO accounts_new (id, address, password_hash, quota_bytes, created_at, password_changed_at)
    SELECT id, address, password_hash, quota_bytes, created_at, password_changed_at
    FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;
CREATE TRIGGER accounts_inbox AFTER INSERT ON accounts BEGIN
    INSERT INTO mailboxes (account_id, name, uidvalidity)
    VALUES (NEW.id, 'INBOX',
            MAX(CAST(strftime('%s', 'now') AS INTEGER),
                (SELECT COALESCE(MAX(uidvalidity), 0) + 1 FROM mailboxes)));
END;
COMMIT;
PRAGMA foreign_keys = ON;

-- UIDVALIDITY is never given twice (RFC 3501 §2.3.1.1).
--
-- A new mailbox took MAX(now, the highest UIDVALIDITY of the mailboxes
-- there are + 1); a mailbox deleted and created again within the same
-- second, when it held the highest value, got its old UIDVALIDITY back
-- with UIDs from 1, so a client's cached UID 1 named another message.
-- The last value given is now kept apart from the mailboxes, and every
-- new mailbox takes MAX(now, last + 1).
CREATE TABLE uidvalidity_last (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    last INTEGER NOT NULL
) STRICT;
INSERT INTO uidvalidity_last (one, last)
    SELECT 1, COALESCE(MAX(uidvalidity), 0) FROM mailboxes;

-- Every mailbox made anywhere (an account's INBOX by the trigger below,
-- CREATE, RENAME of INBOX) takes the next value, whatever the statement
-- that made it wrote there.
CREATE TRIGGER mailboxes_uidvalidity AFTER INSERT ON mailboxes BEGIN
    UPDATE uidvalidity_last
       SET last = MAX(last + 1, CAST(strftime('%s', 'now') AS INTEGER));
    UPDATE mailboxes SET uidvalidity = (SELECT last FROM uidvalidity_last)
     WHERE id = NEW.id;
END;

DROP TRIGGER accounts_inbox;
CREATE TRIGGER accounts_inbox AFTER INSERT ON accounts BEGIN
    INSERT INTO mailboxes (account_id, name, uidvalidity)
    VALUES (NEW.id, 'INBOX', 0);
END;

-- RFC 3501 §2.3.2 \Recent: a message is recent to the one session that
-- first learns of it. Each mailbox keeps the highest UID some session has
-- claimed; a session that finds messages above it claims them. Mail that
-- is already here is not recent.
ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET recent_uid = uidnext - 1;

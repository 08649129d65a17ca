-- Low-balance notifications are published to the events topic from this
-- table (a transactional outbox): the row commits with the balance that
-- caused it, and a publisher marks it published once the broker has it, so
-- a crash between the two republishes instead of losing the event.
ALTER TABLE notifications ADD COLUMN published_at timestamptz;
-- What existed before the outbox was published (or never will be).
UPDATE notifications SET published_at = created_at;
CREATE INDEX notifications_unpublished_idx ON notifications (id) WHERE published_at IS NULL;

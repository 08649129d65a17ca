-- cdr_keys_lookup: the dedupe claims of keys, one index probe per key
-- whatever the planner's statistics say. A worker looks up every key of a
-- batch (tens of thousands) before it claims the new ones; costed as a
-- plain `key = ANY(...)`, that many probes look dearer than reading the
-- whole table, and the planner would scan cdr_keys for every batch once
-- the table has a few hundred thousand rows. The settings below hold for
-- this function's statement only.
CREATE FUNCTION cdr_keys_lookup(keys uuid[], window_secs double precision)
RETURNS TABLE (key uuid, topic text, "partition" integer, "offset" bigint, live boolean, content bigint)
LANGUAGE sql STABLE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
    SELECT c.key, c.topic, c."partition", c."offset", c.seen_at >= now() - make_interval(secs => window_secs), c.content
    FROM cdr_keys c WHERE c.key = ANY (keys)
$$;

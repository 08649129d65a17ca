-- pgbench script: one worker batch's dedupe claim, 10,000 new keys in key
-- order into a table shaped like cdr_keys (sinks/dedupe.go claim).
INSERT INTO cdr_keys (key, topic, "partition", "offset")
SELECT k, 'cdrs', 0, 0 FROM (SELECT gen_random_uuid() AS k FROM generate_series(1, 10000) ORDER BY 1) s
ON CONFLICT (key) DO NOTHING;

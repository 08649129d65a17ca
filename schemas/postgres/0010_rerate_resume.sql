-- A rerating job resumed after the catalog changed says so: the resume
-- must ask for it (tarifa rerate resume --with-current-catalog, the API's
-- "current_catalog"), and the job keeps the catalog it started with in
-- catalog_version and records here the one its remaining chunks were
-- rated against.
ALTER TABLE rerate_jobs ADD COLUMN resumed_catalog_version bigint;

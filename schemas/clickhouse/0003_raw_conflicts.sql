-- A re-send with the switch and id of a billed CDR but other content is
-- kept in cdrs_raw under a synthetic id (<id>#conflict-<hash>) and flagged
-- here with the id of the CDR it conflicts with; '' for every other row.
ALTER TABLE cdrs_raw ADD COLUMN duplicate_of String DEFAULT '';

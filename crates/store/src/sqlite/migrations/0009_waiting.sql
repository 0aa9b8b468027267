-- The jobs that wait for a job, found as it finishes (its waiting jobs are claimed in the
-- transaction that records its success). PostgreSQL has had this index from the start.
CREATE INDEX job_deps_depends_on ON job_deps (depends_on);

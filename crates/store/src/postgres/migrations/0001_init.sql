-- Incident numbers: one counter row, incremented inside the declaring transaction; its row
-- lock serialises declarations across replicas, so numbers are unique and gapless.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('incident', 0);

-- The projection: the full state as JSON, plus the columns the incident list filters on.
CREATE TABLE incidents (
    number BIGINT PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    phase BIGINT NOT NULL,
    severity TEXT,
    private BOOLEAN NOT NULL,
    drill BOOLEAN NOT NULL,
    declared_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX incidents_phase ON incidents (phase, number);
CREATE INDEX incidents_status ON incidents (status, number);
CREATE INDEX incidents_severity ON incidents (severity, number);

CREATE TABLE incident_services (
    service TEXT NOT NULL,
    incident_number BIGINT NOT NULL REFERENCES incidents (number),
    PRIMARY KEY (service, incident_number)
);
CREATE INDEX incident_services_incident ON incident_services (incident_number);

CREATE TABLE incident_labels (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    incident_number BIGINT NOT NULL REFERENCES incidents (number),
    PRIMARY KEY (key, value, incident_number)
);
CREATE INDEX incident_labels_incident ON incident_labels (incident_number);

-- Every change, in order; the source of truth the projection is folded from.
CREATE TABLE events (
    incident_number BIGINT NOT NULL REFERENCES incidents (number),
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (incident_number, seq)
);

-- Searchable text: seq 0 holds the incident's fields, other rows the text of timeline events.
-- The 'simple' configuration matches words as typed in any language, like SQLite's unicode61.
CREATE TABLE incident_text (
    incident_number BIGINT NOT NULL REFERENCES incidents (number),
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
    PRIMARY KEY (incident_number, seq)
);
CREATE INDEX incident_text_tsv ON incident_text USING GIN (tsv);

CREATE TABLE persons (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT UNIQUE,
    slack_user_id TEXT UNIQUE,
    matrix_id TEXT UNIQUE,
    created_at_ms BIGINT NOT NULL
);

-- The durable outbox, timers included.
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    incident_number BIGINT REFERENCES incidents (number),
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    last_error TEXT,
    checkpoint TEXT,
    result TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX jobs_pending ON jobs (run_at_ms, id) WHERE state = 'pending';
CREATE INDEX jobs_running ON jobs (lease_until_ms) WHERE state = 'running';
CREATE INDEX jobs_incident ON jobs (incident_number);

CREATE TABLE job_deps (
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    depends_on BIGINT NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX job_deps_depends_on ON job_deps (depends_on);

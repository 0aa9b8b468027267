-- Incident numbers: one counter row, incremented inside the declaring transaction.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('incident', 0);

-- The projection: the full state as JSON, plus the columns the incident list filters on.
CREATE TABLE incidents (
    number INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    phase INTEGER NOT NULL,
    severity TEXT,
    private INTEGER NOT NULL,
    drill INTEGER NOT NULL,
    declared_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX incidents_phase ON incidents (phase, number);
CREATE INDEX incidents_status ON incidents (status, number);
CREATE INDEX incidents_severity ON incidents (severity, number);

CREATE TABLE incident_services (
    service TEXT NOT NULL,
    incident_number INTEGER NOT NULL REFERENCES incidents (number),
    PRIMARY KEY (service, incident_number)
) WITHOUT ROWID;
CREATE INDEX incident_services_incident ON incident_services (incident_number);

CREATE TABLE incident_labels (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    incident_number INTEGER NOT NULL REFERENCES incidents (number),
    PRIMARY KEY (key, value, incident_number)
) WITHOUT ROWID;
CREATE INDEX incident_labels_incident ON incident_labels (incident_number);

-- Every change, in order; the source of truth the projection is folded from.
CREATE TABLE events (
    incident_number INTEGER NOT NULL REFERENCES incidents (number),
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (incident_number, seq)
);

-- Searchable text: seq 0 holds the incident's fields, other rows the text of timeline events.
CREATE TABLE incident_text (
    id INTEGER PRIMARY KEY,
    incident_number INTEGER NOT NULL REFERENCES incidents (number),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (incident_number, seq)
);
CREATE VIRTUAL TABLE incident_text_fts USING fts5 (
    body,
    content = 'incident_text',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER incident_text_ai AFTER INSERT ON incident_text BEGIN
    INSERT INTO incident_text_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER incident_text_ad AFTER DELETE ON incident_text BEGIN
    INSERT INTO incident_text_fts (incident_text_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER incident_text_au AFTER UPDATE ON incident_text BEGIN
    INSERT INTO incident_text_fts (incident_text_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO incident_text_fts (rowid, body) VALUES (new.id, new.body);
END;

CREATE TABLE persons (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT UNIQUE,
    slack_user_id TEXT UNIQUE,
    matrix_id TEXT UNIQUE,
    created_at_ms INTEGER NOT NULL
);

-- The durable outbox, timers included.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    incident_number INTEGER REFERENCES incidents (number),
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at_ms INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until_ms INTEGER,
    last_error TEXT,
    checkpoint TEXT,
    result TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER
);
CREATE INDEX jobs_pending ON jobs (run_at_ms, id) WHERE state = 'pending';
CREATE INDEX jobs_running ON jobs (lease_until_ms) WHERE state = 'running';
CREATE INDEX jobs_incident ON jobs (incident_number);

CREATE TABLE job_deps (
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    depends_on INTEGER NOT NULL REFERENCES jobs (id),
    PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;

-- Sign-in: what a person may do, and a local login for the web UI.
ALTER TABLE persons ADD COLUMN access TEXT NOT NULL DEFAULT 'responder';
ALTER TABLE persons ADD COLUMN login TEXT;
ALTER TABLE persons ADD COLUMN password_hash TEXT;
CREATE UNIQUE INDEX persons_login ON persons (login);

-- API tokens, stored as SHA-256 hashes: the token itself is shown once and never kept.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    access TEXT NOT NULL,
    person_id INTEGER REFERENCES persons (id),
    created_at_ms INTEGER NOT NULL,
    last_used_at_ms INTEGER,
    revoked_at_ms INTEGER
);

-- Web sessions, by the hash of the cookie's value.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES persons (id),
    csrf TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at_ms);

-- Who may see a private incident (derived from its events, like the rest of the projection).
CREATE TABLE incident_members (
    person_id INTEGER NOT NULL,
    incident_number INTEGER NOT NULL REFERENCES incidents (number),
    PRIMARY KEY (person_id, incident_number)
) WITHOUT ROWID;
CREATE INDEX incident_members_incident ON incident_members (incident_number);

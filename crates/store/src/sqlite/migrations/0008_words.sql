-- Every word the full-text index holds, as its tokenizer wrote it, so that a search for a word's
-- beginning asks the index for the few whole words it stands for ("gateway" OR "gateways"),
-- which FTS5 reads lazily, newest first, instead of a prefix query (`"gate"*`), for which
-- FTS5 merges every match of every such word before it returns the first (measured on
-- 2,000,000 text rows: 22 ms for a common word against 0.3 ms for the words).
CREATE TABLE incident_words (term TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE VIRTUAL TABLE incident_text_terms USING fts5vocab (incident_text_fts, 'row');
INSERT INTO incident_words (term) SELECT term FROM incident_text_terms;
DROP TABLE incident_text_terms;
-- New text is tokenized by the same tokenizer in a one-row index of its own, whose words are
-- added (not `INSERT OR IGNORE`: the statement that fires a trigger decides its conflicts),
-- so the list is the index's own words, never a second tokenizer's guess of them. A word
-- whose text is deleted stays in the list: asked for, it matches nothing.
CREATE VIRTUAL TABLE incident_words_new USING fts5 (
    body,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE incident_words_new_terms USING fts5vocab (incident_words_new, 'row');
-- Triggers of their own beside migration 7's, which keep the full-text index.
CREATE TRIGGER incident_words_ai AFTER INSERT ON incident_text BEGIN
    INSERT INTO incident_words_new (rowid, body) VALUES (new.id, new.body);
    INSERT INTO incident_words (term) SELECT n.term FROM incident_words_new_terms n
        WHERE NOT EXISTS (SELECT 1 FROM incident_words w WHERE w.term = n.term);
    INSERT INTO incident_words_new (incident_words_new) VALUES ('delete-all');
END;
CREATE TRIGGER incident_words_au AFTER UPDATE OF body ON incident_text BEGIN
    INSERT INTO incident_words_new (rowid, body) VALUES (new.id, new.body);
    INSERT INTO incident_words (term) SELECT n.term FROM incident_words_new_terms n
        WHERE NOT EXISTS (SELECT 1 FROM incident_words w WHERE w.term = n.term);
    INSERT INTO incident_words_new (incident_words_new) VALUES ('delete-all');
END;

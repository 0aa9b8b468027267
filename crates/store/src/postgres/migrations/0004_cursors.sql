-- Where a reader of an outside stream got to (a Matrix homeserver's sync token), so that a
-- restart neither misses nor repeats what came in.
CREATE TABLE cursors (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

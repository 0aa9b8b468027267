-- Each incident's room on each chat platform, both ways: incident → channel for posting,
-- channel → incident for commands typed in it.
CREATE TABLE chat_channels (
    platform TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    incident_number BIGINT NOT NULL REFERENCES incidents (number),
    name TEXT NOT NULL,
    url TEXT,
    -- The pinned headline message, once posted.
    headline_id TEXT,
    PRIMARY KEY (platform, channel_id)
);
CREATE UNIQUE INDEX chat_channels_incident ON chat_channels (incident_number, platform);

-- What a declaration came from (a chat command, an alert), so that running it again
-- finds the incident it made instead of declaring another.
ALTER TABLE incidents ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX incidents_origin ON incidents (origin);

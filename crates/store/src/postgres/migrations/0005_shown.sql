-- What an incident's room shows: a digest of its headline as last rendered, and the topic as
-- last set, so that an update that would change neither makes no call.
ALTER TABLE chat_channels ADD COLUMN headline_digest TEXT;
ALTER TABLE chat_channels ADD COLUMN topic TEXT;

-- The open incidents, newest first: the dashboard's and the open filter's walk, which would
-- otherwise read every incident ever declared to find the few still open. The phase is
-- written into the queries as the literal 3 (resolved) so that the planner can use it.
CREATE INDEX incidents_open ON incidents (number) WHERE phase < 3;

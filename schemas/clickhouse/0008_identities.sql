-- Identity links (transforms/identity.py): an event carrying both anonymous_id and
-- user_id links the browser to the user. One row per (anonymous id, user) pair, the
-- latest version wins: 'linked' by the pipeline (versioned by the event's time),
-- 'conflict' when the browser was already linked to another user (never used to
-- resolve), 'unlinked' by `radixinsight identity unlink` (versioned by wall clock).
-- event_id is the provenance: the event that caused the link.
CREATE TABLE IF NOT EXISTS identities
(
    project_id   LowCardinality(String),
    anonymous_id String,
    user_id      String,
    status       LowCardinality(String),
    linked_at    DateTime64(3, 'UTC'),
    event_id     UUID,
    source       LowCardinality(String),
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, anonymous_id, user_id);

-- The person each anonymous id resolves to now: its earliest standing link.
CREATE VIEW IF NOT EXISTS identity_map AS
SELECT i.project_id AS project_id, i.anonymous_id AS anonymous_id,
       argMin(i.user_id, i.linked_at) AS user_id
FROM identities AS i FINAL
WHERE i.status = 'linked'
GROUP BY i.project_id, i.anonymous_id;

-- Events with the person they belong to as of now (history is never rewritten:
-- anonymous events before an identify resolve here, and unlinks are followed).
CREATE VIEW IF NOT EXISTS events_resolved AS
SELECT e.*,
       if(e.user_id != '', e.user_id, if(m.user_id != '', m.user_id, e.anonymous_id)) AS person_id
FROM events AS e FINAL
LEFT JOIN identity_map AS m ON e.project_id = m.project_id AND e.anonymous_id = m.anonymous_id;

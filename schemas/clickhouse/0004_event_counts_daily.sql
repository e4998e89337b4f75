-- Daily event counts per project and event name (the design's event_counts_daily).
-- SummingMergeTree sums rows only when parts merge, so always read it with
-- sum(event_count) ... GROUP BY, never the raw rows.
-- Kept a year (the design's "warm storage"), longer than the 90-day events.
CREATE TABLE IF NOT EXISTS event_counts_daily
(
    project_id  LowCardinality(String),
    event_date  Date,
    event_name  LowCardinality(String),
    event_count UInt64
)
ENGINE = SummingMergeTree(event_count)
PARTITION BY toYYYYMM(event_date)
ORDER BY (project_id, event_date, event_name)
TTL event_date + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS event_counts_daily_mv TO event_counts_daily AS
SELECT project_id, event_date, event_name, count() AS event_count
FROM events
GROUP BY project_id, event_date, event_name;

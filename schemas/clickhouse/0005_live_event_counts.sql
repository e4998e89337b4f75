-- Event counts per 10 s window of arrival time, written by the streaming job while
-- it runs (the proof that event-time windows fire on the live stream).
-- At-least-once: a job restarted from committed Kafka offsets can emit a window a
-- second time, so readers take the latest emission per window (argMax by emitted_at).
CREATE TABLE IF NOT EXISTS live_event_counts
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    project_id   LowCardinality(String),
    event_name   LowCardinality(String),
    events       UInt64,
    emitted_at   DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toDate(window_start)
ORDER BY (project_id, window_start, event_name)
TTL toDate(window_start) + INTERVAL 7 DAY
SETTINGS ttl_only_drop_parts = 1;

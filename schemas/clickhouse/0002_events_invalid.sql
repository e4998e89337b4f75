-- Bad rows (ARCHITECTURE.md "Bad rows"): every event that could not be stored,
-- flattened from {schema_version, processor{name, version}, stage,
-- failure{type, messages[]}, payload_raw, partial_event, received_at}.
-- project_id is '' when the payload was too broken to tell.
-- Plain MergeTree: a bad row retried twice is two reports of one failure,
-- harmless for debugging and cheaper than dedup.
CREATE TABLE IF NOT EXISTS events_invalid
(
    schema_version    LowCardinality(String),
    processor_name    LowCardinality(String),
    processor_version LowCardinality(String),
    stage             LowCardinality(String),
    failure_type      LowCardinality(String),
    failure_messages  Array(String),
    payload_raw       String CODEC(ZSTD(3)),
    partial_event     String CODEC(ZSTD(3)),
    received_at       DateTime64(3, 'UTC'),
    project_id        LowCardinality(String) DEFAULT '',
    ingest_date       Date DEFAULT toDate(received_at)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ingest_date)
ORDER BY (project_id, ingest_date, stage, failure_type, received_at)
TTL ingest_date + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1;

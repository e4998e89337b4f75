-- Completeness watermark per project (transforms/event_time.py): every event with an
-- event time before complete_until has reached the pipeline; later arrivals are late.
-- Queries mark time buckets after it as partial. Read max(complete_until) per project.
CREATE TABLE IF NOT EXISTS completeness
(
    project_id     LowCardinality(String),
    complete_until DateTime64(3, 'UTC'),
    updated_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(complete_until)
ORDER BY project_id;

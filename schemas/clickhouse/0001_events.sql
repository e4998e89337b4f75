-- Enriched events: one row per event, column names as in ARCHITECTURE.md.
--
-- Dedup: runners retry bundles and producers retry requests, so one event_id can
-- arrive more than once. ReplacingMergeTree collapses rows with an equal sort key
-- inside one partition, so the key ends in event_id and every other key column
-- (project_id, event_date, event_name) and the partition (month of event_date) are
-- functions of the event itself: all copies of an event share key and partition.
-- Merges are eventual: exact queries read `FROM events FINAL` (parallel, per
-- partition) or aggregate with argMax/any by event_id. No version column: a retry
-- carries the same payload, so whichever copy survives is right.
-- The key leads with what queries filter on (project, date, event name); a bloom
-- filter on event_name would never prune (it is in the key, low cardinality).
-- Partitioned by the column queries filter on (event_date), not by timestamp.
-- TTL drops whole parts (ttl_only_drop_parts) 90 days after their newest event:
-- a backfill of events older than 90 days is dropped at the next merge.
CREATE TABLE IF NOT EXISTS events
(
    event_id            UUID,
    event_name          LowCardinality(String),
    event_type          LowCardinality(String),
    project_id          LowCardinality(String),
    timestamp           DateTime64(3, 'UTC'),
    received_at         DateTime64(3, 'UTC'),
    user_id             String,
    anonymous_id        String,
    session_id          String,
    resolved_user_id    String,
    ip_address          String,
    user_agent          String CODEC(ZSTD(3)),
    locale              LowCardinality(String),
    country             LowCardinality(String),
    region              LowCardinality(String),
    city                LowCardinality(String),
    properties          String CODEC(ZSTD(3)),
    page_url            String CODEC(ZSTD(3)),
    page_path           String,
    page_referrer       String CODEC(ZSTD(3)),
    page_title          String CODEC(ZSTD(3)),
    app_name            LowCardinality(String),
    app_version         LowCardinality(String),
    browser             LowCardinality(String),
    browser_version     LowCardinality(String),
    os                  LowCardinality(String),
    os_version          LowCardinality(String),
    device_type         LowCardinality(String),
    device_manufacturer LowCardinality(String),
    device_model        LowCardinality(String),
    is_bot              UInt8,
    utm_source          LowCardinality(String),
    utm_medium          LowCardinality(String),
    utm_campaign        LowCardinality(String),
    utm_term            String,
    utm_content         String,
    referrer_medium     LowCardinality(String),
    referrer_source     LowCardinality(String),
    referrer_term       String,
    referrer_host       LowCardinality(String),
    timezone            LowCardinality(String),
    local_hour          UInt8,
    local_day_of_week   UInt8,  -- 1 = Monday
    is_business_hours   UInt8,
    -- DEFAULT, not MATERIALIZED: `SELECT *` and clickhouse-connect inserts see them,
    -- and a writer may pass them (they must then equal these expressions).
    event_date          Date DEFAULT toDate(timestamp),
    event_hour          UInt8 DEFAULT toHour(timestamp),

    INDEX idx_properties properties TYPE tokenbf_v1(512, 3, 0) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_date)
ORDER BY (project_id, event_date, event_name, event_id)
TTL event_date + INTERVAL 90 DAY
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

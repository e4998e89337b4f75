-- Sessions, aggregated as events arrive.
-- The design's `user_sessions` MV stored one row per INSERT block, so a session
-- spanning two inserts became two rows with wrong start/end/counts. Here the MV
-- writes partial aggregates (min/max/sum and -State functions) into an
-- AggregatingMergeTree keyed by session; merges combine them, and readers finish
-- them with GROUP BY + min/max/sum/-Merge (or the `session_summary` view).
-- Not partitioned by time: a session crossing midnight or a month boundary across
-- two inserts must land in one partition for its partial rows to merge.
-- Counts include duplicate deliveries that have not been deduplicated upstream;
-- the uniqExact states do not.
CREATE TABLE IF NOT EXISTS sessions
(
    project_id       LowCardinality(String),
    session_id       String,
    resolved_user_id AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    session_start    SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    session_end      SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    event_count      SimpleAggregateFunction(sum, UInt64),
    pageview_count   SimpleAggregateFunction(sum, UInt64),
    event_names      AggregateFunction(uniqExact, String),
    pages            AggregateFunction(uniqExact, String),
    entry_page       AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    exit_page        AggregateFunction(argMax, String, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (project_id, session_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_mv TO sessions AS
SELECT
    project_id,
    session_id,
    -- identity resolution can attach a user late in a session: latest wins
    argMaxState(resolved_user_id, timestamp)                  AS resolved_user_id,
    min(timestamp)                                            AS session_start,
    max(timestamp)                                            AS session_end,
    count()                                                   AS event_count,
    countIf(event_type = 'page')                              AS pageview_count,
    uniqExactState(event_name)                                AS event_names,
    uniqExactStateIf(page_path, page_path != '')              AS pages,
    argMinStateIf(page_path, timestamp, event_type = 'page') AS entry_page,
    argMaxStateIf(page_path, timestamp, event_type = 'page') AS exit_page
FROM events
WHERE session_id != ''
GROUP BY project_id, session_id;

-- Finished sessions for readers; filter on project_id (the key) first.
-- Columns are qualified (s.) because the output aliases reuse their names.
CREATE VIEW IF NOT EXISTS session_summary AS
SELECT
    s.project_id                                                AS project_id,
    s.session_id                                                AS session_id,
    argMaxMerge(s.resolved_user_id)                             AS resolved_user_id,
    min(s.session_start)                                        AS session_start,
    max(s.session_end)                                          AS session_end,
    dateDiff('second', min(s.session_start), max(s.session_end)) AS duration_s,
    sum(s.event_count)                                          AS event_count,
    sum(s.pageview_count)                                       AS pageview_count,
    uniqExactMerge(s.event_names)                               AS unique_event_names,
    uniqExactMerge(s.pages)                                     AS unique_pages,
    argMinMerge(s.entry_page)                                   AS entry_page,
    argMaxMerge(s.exit_page)                                    AS exit_page
FROM sessions AS s
GROUP BY s.project_id, s.session_id;

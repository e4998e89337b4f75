-- Insert deduplication for the ClickHouse sink (runners retry bundles).
-- The sink sends `insert_deduplication_token` = a hash of each batch's sorted event_ids;
-- a non-replicated MergeTree ignores tokens unless it keeps a window of recent block
-- hashes. Measured on chDB 26.9: with the window, a replayed batch adds no rows to
-- `events`; the materialized views' targets must keep a window too, or the replay is
-- still added to their counts (deduplicate_blocks_in_dependent_materialized_views = 1
-- is the default; their block ids derive from the source token, not their content, so
-- two different batches that aggregate to equal rows are both kept).
-- The window counts blocks (one per partition per insert); 10000 is ClickHouse's
-- replicated default and covers minutes of small streaming inserts.
-- FINAL on `events` still collapses replays that fall outside the window or that
-- were batched differently (a different token).
ALTER TABLE events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE sessions MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE event_counts_daily MODIFY SETTING non_replicated_deduplication_window = 10000;

-- Clock-skew correction (validate step): `timestamp` is the event time we trust; when
-- a client clock ran ahead it was corrected from received_at and sent_at, and the
-- client's own value is kept here.
ALTER TABLE events ADD COLUMN IF NOT EXISTS client_timestamp DateTime64(3, 'UTC') DEFAULT timestamp AFTER timestamp;
ALTER TABLE events ADD COLUMN IF NOT EXISTS timestamp_corrected UInt8 DEFAULT 0 AFTER client_timestamp;

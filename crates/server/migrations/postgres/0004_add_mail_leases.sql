-- A sender claims due messages for a while (a lease) before delivering them, so that several
-- nodes never pick the same message and one that dies mid-send lets another retry later.
ALTER TABLE mail_outbox ADD COLUMN claimed_until BIGINT;

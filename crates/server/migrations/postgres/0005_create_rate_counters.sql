-- Rate-limit counters every node shares (limits.rs): token buckets and failed sign-ins.
-- UNLOGGED: written on most auth requests, worthless after a crash (they start over as if
-- nothing had happened), and never worth replicating.

CREATE UNLOGGED TABLE rate_buckets (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL,
    -- When the bucket is full again, and the row may go.
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE INDEX rate_buckets_expiry ON rate_buckets (expires_at);

CREATE UNLOGGED TABLE sign_in_failures (
    account TEXT PRIMARY KEY,
    consecutive BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    in_window BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL,
    -- When the delay and the lockout window are over, and the row may go.
    expires_at BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_expiry ON sign_in_failures (expires_at);

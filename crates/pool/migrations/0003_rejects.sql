-- Refused shares per (worker, reason), so the pool's reject counts survive a restart. The
-- writer adds each batch's counts to these rows. `has_worker` is false for shares refused
-- before any worker was named (worker is then ''), which count for the pool only.
CREATE TABLE rejects (
    has_worker BOOLEAN NOT NULL,
    worker TEXT NOT NULL,
    reason TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (has_worker, worker, reason)
);

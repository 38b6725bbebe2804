-- The fleet's inventory, history and alerts (crates/fleet/src/store.rs says what each holds).
CREATE TABLE fleet_miners (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    site TEXT NOT NULL,
    ip TEXT NOT NULL,
    make TEXT NOT NULL,
    model TEXT NOT NULL,
    firmware TEXT NOT NULL,
    serial TEXT,
    mac TEXT,
    hostname TEXT,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT,
    reading TEXT,
    reading_at BIGINT
);
CREATE INDEX fleet_miners_site ON fleet_miners (site);
CREATE INDEX fleet_miners_ip ON fleet_miners (ip);

CREATE TABLE fleet_addresses (
    miner_id BIGINT NOT NULL,
    ip TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (miner_id, ip)
) WITHOUT ROWID;

CREATE TABLE fleet_hourly (
    miner_id BIGINT NOT NULL,
    hour BIGINT NOT NULL,
    samples INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    hashrate_ghs BIGINT NOT NULL,
    temp_dc INTEGER,
    power_w INTEGER,
    accepted BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    boards TEXT NOT NULL,
    PRIMARY KEY (miner_id, hour)
) WITHOUT ROWID;

CREATE TABLE fleet_alerts (
    site TEXT NOT NULL,
    id BIGINT NOT NULL,
    kind TEXT NOT NULL,
    ip TEXT NOT NULL,
    board INTEGER,
    start_at BIGINT NOT NULL,
    end_at BIGINT,
    evidence TEXT NOT NULL,
    PRIMARY KEY (site, id)
);
CREATE INDEX fleet_alerts_end ON fleet_alerts (end_at);

CREATE TABLE fleet_sites (
    site TEXT PRIMARY KEY,
    last_cycle_at BIGINT NOT NULL,
    report TEXT NOT NULL
);

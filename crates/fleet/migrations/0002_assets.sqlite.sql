-- The asset register (crates/fleet/src/assets/db.rs says what each holds). Dates are days
-- since 1970-01-01 (INTEGER); money is in millionths of a US dollar (BIGINT).
CREATE TABLE fleet_assets (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    maker TEXT NOT NULL,
    model TEXT NOT NULL,
    nameplate_ghs BIGINT NOT NULL,
    nameplate_w INTEGER NOT NULL,
    firmware TEXT,
    mac TEXT,
    control_board TEXT,
    psu TEXT,
    hash_boards TEXT NOT NULL,
    origin TEXT NOT NULL,
    hts_code TEXT NOT NULL,
    price_micro_usd BIGINT NOT NULL,
    currency TEXT NOT NULL,
    order_id TEXT NOT NULL,
    ordered_on INTEGER NOT NULL,
    state TEXT NOT NULL,
    last_event TEXT NOT NULL,
    last_on INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    produced_on INTEGER,
    shipped_on INTEGER,
    held_on INTEGER,
    released_on INTEGER,
    delivered_on INTEGER,
    deployed_on INTEGER,
    retired_on INTEGER,
    shipment TEXT,
    site TEXT,
    row_name TEXT,
    rack TEXT,
    position TEXT
);
CREATE INDEX fleet_assets_mac ON fleet_assets (mac);

CREATE TABLE fleet_events (
    asset_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    on_day INTEGER NOT NULL,
    place TEXT,
    shipment TEXT,
    reason TEXT,
    fee_micro_usd BIGINT,
    note TEXT,
    PRIMARY KEY (asset_id, seq)
) WITHOUT ROWID;

CREATE TABLE fleet_holds (
    asset_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    shipment TEXT,
    reason TEXT,
    place TEXT,
    start_on INTEGER NOT NULL,
    end_on INTEGER,
    fee_micro_usd BIGINT,
    PRIMARY KEY (asset_id, seq)
) WITHOUT ROWID;

CREATE TABLE fleet_repairs (
    asset_id BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    opened_on INTEGER NOT NULL,
    fault TEXT NOT NULL,
    board INTEGER,
    chips TEXT,
    evidence TEXT,
    centre TEXT,
    shipment TEXT,
    sent_on INTEGER,
    back_on INTEGER,
    outcome TEXT,
    triage TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (asset_id, seq)
) WITHOUT ROWID;

CREATE TABLE fleet_board_reports (
    board_serial TEXT NOT NULL,
    at_unix BIGINT NOT NULL,
    place TEXT NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (board_serial, at_unix)
);

-- The register's version: every transaction that changes the machines, their holds or
-- their repairs moves it first (`Store::bump_register`, which also takes the write lock),
-- whichever process runs it (the console, `hashforge fleet import`). A console keeps the
-- register it read under this number and reads it again only when the number has moved.
CREATE TABLE fleet_register_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    v BIGINT NOT NULL
);
INSERT INTO fleet_register_version (id, v) VALUES (1, 0);

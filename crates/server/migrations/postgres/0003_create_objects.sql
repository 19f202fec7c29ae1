-- Objects of the models declared in the configuration, as JSON documents.

CREATE TABLE objects (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    owner_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    data JSONB NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX objects_model ON objects (model, id);
CREATE INDEX objects_owner ON objects (owner_id);

-- One row per value of a field declared unique; the primary key enforces it.
CREATE TABLE object_unique_values (
    model TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    object_id TEXT NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    PRIMARY KEY (model, field, value)
);
CREATE INDEX object_unique_values_object ON object_unique_values (object_id);

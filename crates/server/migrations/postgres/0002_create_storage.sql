-- Buckets and file metadata; the bytes live in the blob store under `blob_key`.

CREATE TABLE buckets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    is_public BOOLEAN NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    tags JSONB NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- `root` always exists and is public; its id is 24 random hex digits.
INSERT INTO buckets (id, name, is_public, created_at, updated_at)
VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 24), 'root', TRUE,
        (extract(epoch FROM now()) * 1000)::BIGINT,
        (extract(epoch FROM now()) * 1000)::BIGINT);

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    bucket_id TEXT NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    blob_key TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    encoding TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    etag TEXT NOT NULL,
    is_public BOOLEAN NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    tags JSONB NOT NULL DEFAULT '[]',
    uploaded_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (bucket_id, file_name)
);
CREATE INDEX files_user_id ON files (user_id);

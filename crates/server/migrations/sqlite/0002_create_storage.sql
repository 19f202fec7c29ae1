-- Buckets and file metadata; the bytes live in the blob store under `blob_key`.

CREATE TABLE buckets (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    is_public INTEGER NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- `root` always exists and is public.
INSERT INTO buckets (id, name, is_public, created_at, updated_at)
VALUES (lower(hex(randomblob(12))), 'root', 1,
        CAST(strftime('%s', 'now') AS INTEGER) * 1000,
        CAST(strftime('%s', 'now') AS INTEGER) * 1000);

CREATE TABLE files (
    id TEXT PRIMARY KEY NOT NULL,
    bucket_id TEXT NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    file_name TEXT NOT NULL,
    blob_key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    encoding TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    etag TEXT NOT NULL,
    is_public INTEGER NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    uploaded_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (bucket_id, file_name)
);

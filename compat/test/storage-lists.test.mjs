// Storage lists, totals, copies, moves and bulk deletes through the real client (protocol.md
// §6.2 rows 5–7, 9–11, 27–29, §6.6): `storage.listBuckets`, `storage.searchFiles`,
// `bucket.listFiles` with an expression and options, `bucket.deleteFiles`, `file.duplicate`,
// `file.moveTo`, `file.copyTo`, `bucket.getInfo(true)` and `storage.getStats`.
//
// Files are uploaded as strings: the client sends those to `upload-object` as JSON strings, which
// works in Node without a browser-like FormData.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import { ISO_MS_RE, OBJECT_ID_RE, QUICK, expectError, expectOk, newClient, signUpWithSession } from "../support/helpers.mjs";

const VERIFICATION_OFF = { BASALT_AUTH__EMAIL_VERIFICATION: "false" };

/** Uploads `text` as `name` into `bucket`; returns the file metadata. */
async function put(client, bucket, name, text, options = {}) {
  const result = await client.storage.bucket(bucket).upload(name, text, options);
  expectOk(result, `upload of ${name} to ${bucket}`);
  return result.data;
}

/** A bucket with a unique name; returns its metadata. */
async function newBucket(client, prefix, isPublic = true) {
  const name = `${prefix}-${Math.random().toString(16).slice(2, 10)}`;
  const result = await client.storage.createBucket(name, isPublic);
  expectOk(result, `create-bucket ${name}`);
  return result.data;
}

const names = (list) => list.map((item) => item.fileName ?? item.name);

describe("storage lists and file transfers through the client", () => {
  let server;
  before(async () => {
    server = await startServer({ env: VERIFICATION_OFF });
  });
  after(() => server?.close());

  test("bucket.listFiles filters, sorts and pages, with countInfo", QUICK, async () => {
    const { client } = await signUpWithSession(server);
    const bucket = await newBucket(client, "docs");
    for (const [name, text] of [["d.txt", "dddd"], ["a.txt", "a"], ["c.md", "ccc"], ["b.txt", "bb"], ["e.txt", "eeeee"]]) {
      await put(client, bucket.name, name, text);
    }

    const all = await client.storage.bucket(bucket.name).listFiles();
    expectOk(all, "listFiles()");
    assert.equal(all.data.length, 5);
    for (const file of all.data) {
      assert.match(file._id, OBJECT_ID_RE);
      assert.equal(file.bucketId, bucket._id);
      assert.match(file.uploadedAt, ISO_MS_RE);
      assert.ok(file.publicPath.startsWith(`${server.url}/_storage/${bucket._id}/`), file.publicPath);
    }

    const page = await client.storage
      .bucket(bucket._id)
      .listFiles("size >= 2 && ENDSWITH(fileName, '.txt')", {
        page: 2,
        limit: 1,
        sort: { field: "size", direction: "desc" },
        returnCountInfo: true,
      });
    expectOk(page, "listFiles(expression, options)");
    assert.deepEqual(names(page.data.result), ["d.txt"]);
    assert.deepEqual(page.data.countInfo, { count: 3, totalPages: 3, currentPage: 2, pageSize: 1 });

    const byName = await client.storage.bucket(bucket.name).listFiles({ sort: { field: "fileName", direction: "asc" } });
    expectOk(byName, "listFiles(options) (options in the expression's place)");
    assert.deepEqual(names(byName.data), ["a.txt", "b.txt", "c.md", "d.txt", "e.txt"]);

    const bad = await client.storage.bucket(bucket.name).listFiles("size >");
    expectError(bad, "invalid_expression", 400);
    const unknown = await client.storage.bucket("no-such-bucket").listFiles();
    expectError(unknown, "bucket_not_found", 400);
  });

  test("storage.searchFiles and storage.listBuckets show public items and the caller's own", QUICK, async () => {
    const ada = await signUpWithSession(server);
    const bob = await signUpWithSession(server);
    const privateBucket = await newBucket(ada.client, "ada-private", false);
    const tag = `t${Math.random().toString(16).slice(2, 10)}`;
    await put(ada.client, "root", "open.txt", "o", { tags: [tag] });
    await put(ada.client, privateBucket.name, "secret.txt", "s", { isPublic: false, tags: [tag] });

    const expression = `IN(tags, '${tag}')`;
    const adaSees = await ada.client.storage.searchFiles(expression, { sort: { field: "fileName", direction: "asc" } });
    expectOk(adaSees, "searchFiles as the owner");
    assert.deepEqual(names(adaSees.data), ["open.txt", "secret.txt"]);
    const bobSees = await bob.client.storage.searchFiles(expression, { returnCountInfo: true });
    expectOk(bobSees, "searchFiles as another user");
    assert.deepEqual(names(bobSees.data.result), ["open.txt"]);
    assert.equal(bobSees.data.countInfo.count, 1, "the count leaks nothing either");

    const adaBuckets = await ada.client.storage.listBuckets(`name == '${privateBucket.name}' || name == 'root'`);
    expectOk(adaBuckets, "listBuckets(expression)");
    assert.deepEqual(names(adaBuckets.data).sort(), [privateBucket.name, "root"].sort());
    const bobBuckets = await bob.client.storage.listBuckets(undefined, { returnCountInfo: true, limit: 1000 });
    expectOk(bobBuckets, "listBuckets(undefined, options)");
    assert.ok(!names(bobBuckets.data.result).includes(privateBucket.name), "another user's private bucket is not listed");
    assert.ok(names(bobBuckets.data.result).includes("root"));
    assert.equal(bobBuckets.data.countInfo.pageSize, 1000);
    const bobProbe = await bob.client.storage.bucket(privateBucket.name).exists();
    expectOk(bobProbe, "bucket.exists() as another user");
    assert.equal(bobProbe.data, false, "another user's private bucket does not exist for him");
    expectError(await bob.client.storage.bucket(privateBucket.name).getInfo(), "bucket_not_found", 400);
  });

  test("file.duplicate, copyTo and moveTo de-duplicate names and carry the bytes", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);
    const source = await newBucket(client, "src");
    const target = await newBucket(client, "dst");
    const original = await put(client, source.name, "photo.png", "pixels");
    await put(client, target.name, "photo.png", "older");
    const file = client.storage.bucket(source.name).file("photo.png");

    const dup = await file.duplicate();
    expectOk(dup, "duplicate()");
    assert.equal(dup.data.fileName, "photo-1.png");
    assert.notEqual(dup.data._id, original._id);
    const named = await client.storage.bucket(source.name).file(original._id).duplicate("copy.png");
    expectOk(named, "duplicate(name)");
    assert.equal(named.data.fileName, "copy.png");

    const copied = await file.copyTo(target.name);
    expectOk(copied, "copyTo()");
    assert.equal(copied.data.fileName, "photo-1.png");
    assert.equal(copied.data.bucketId, target._id);
    assert.equal(copied.data.userId, user._id);

    const moved = await client.storage.bucket(source.name).file("copy.png").moveTo(target._id);
    expectOk(moved, "moveTo()");
    assert.equal(moved.data._id, named.data._id, "a move keeps the id");
    assert.equal(moved.data.bucketId, target._id);
    const gone = await client.storage.bucket(source.name).file("copy.png").exists();
    assert.equal(gone.data, false);

    for (const meta of [copied.data, moved.data]) {
      const download = await client.storage.bucket(target.name).file(meta._id).download();
      expectOk(download, `download of ${meta.fileName}`);
      assert.equal(await download.data.text(), "pixels");
    }
  });

  test("bucket.deleteFiles deletes the caller's files by name or id and skips the rest", QUICK, async () => {
    const ada = await signUpWithSession(server);
    const bob = await signUpWithSession(server);
    const bucket = await newBucket(ada.client, "shared");
    const a = await put(ada.client, bucket.name, "a.txt", "a");
    await put(ada.client, bucket.name, "b.txt", "b");
    await put(ada.client, bucket.name, "keep.txt", "k");
    await put(bob.client, bucket.name, "bob.txt", "b");

    const refused = await bob.client.storage.bucket(bucket.name).deleteFiles(["a.txt"]);
    expectOk(refused, "deleteFiles of another user's file (skipped)");
    const result = await ada.client.storage.bucket(bucket.name).deleteFiles([a._id, "b.txt", "bob.txt", "missing.txt"]);
    expectOk(result, "deleteFiles()");
    const left = await ada.client.storage.bucket(bucket.name).listFiles(null, { sort: { field: "fileName", direction: "asc" } });
    expectOk(left, "listFiles after deleteFiles");
    assert.deepEqual(names(left.data), ["bob.txt", "keep.txt"]);
    expectError(await newClient(server).storage.bucket(bucket.name).deleteFiles(["keep.txt"]), "missing_session_token", 401);
  });

  test("bucket.getInfo(true) adds stats; storage.getStats totals what the caller may read", QUICK, async () => {
    const { client } = await signUpWithSession(server);
    const bucket = await newBucket(client, "sized", false);
    await put(client, bucket.name, "two.txt", "22");
    await put(client, bucket.name, "four.txt", "4444");

    const plain = await client.storage.bucket(bucket.name).getInfo();
    expectOk(plain, "getInfo()");
    assert.equal(plain.data.stats, undefined);
    const detailed = await client.storage.bucket(bucket.name).getInfo(true);
    expectOk(detailed, "getInfo(true)");
    assert.equal(detailed.data.name, bucket.name);
    assert.deepEqual(detailed.data.stats, { fileCount: 2, totalSize: 6, averageSize: 3, minSize: 2, maxSize: 4 });

    const mine = await client.storage.getStats();
    expectOk(mine, "getStats()");
    for (const key of ["bucketCount", "fileCount", "totalSize", "averageSize", "minSize", "maxSize"]) {
      assert.equal(typeof mine.data[key], "number", `${key} is a number`);
    }
    const anonymous = await newClient(server).storage.getStats();
    expectOk(anonymous, "getStats() without a session");
    assert.ok(mine.data.bucketCount > anonymous.data.bucketCount, "a private bucket counts for its owner only");
    assert.ok(mine.data.fileCount >= anonymous.data.fileCount + 2);
  });
});

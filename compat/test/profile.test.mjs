// The tutorial's profile page (protocol.md §7 rows 9–11): avatar upload to the `root` bucket, the
// public path a browser loads, and `users` object updates, plus the access rules around them.
//
// Uploads go through the real client. In Node, though, the client hands its FormData to
// cross-fetch, i.e. node-fetch 2, which cannot encode Node's built-in FormData and would send the
// text "[object FormData]". The browser-like FormData below (installed for this file only) lets
// node-fetch stream the multipart body that Node's own fetch produces for the same FormData: one
// part named `file`, filename `blob`, `Content-Type` = the Blob's type — what a browser sends.

import assert from "node:assert/strict";
import http from "node:http";
import { Readable } from "node:stream";
import { deflateSync } from "node:zlib";
import { after, afterEach, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  ISO_MS_RE,
  OBJECT_ID_RE,
  QUICK,
  expectError,
  expectOk,
  newClient,
  signUpWithSession,
  signedInClient,
} from "../support/helpers.mjs";

// ---------------------------------------------------------------------------------------------
// Browser-like multipart bodies for node-fetch

const NodeFormData = globalThis.FormData;

/**
 * A FormData that node-fetch 2 can send: a Readable stream (node-fetch pipes streams) with
 * `getBoundary()` (node-fetch then sets `Content-Type: multipart/form-data;boundary=…`). The
 * bytes are Node's own spec-compliant encoding of the same form (`new Response(formData)`).
 */
class BrowserLikeFormData extends Readable {
  #form = new NodeFormData();
  #reader = null;
  #boundary = null;

  append(name, value, fileName) {
    if (this.#reader) throw new Error("FormData changed after its body was encoded");
    if (fileName === undefined) this.#form.append(name, value);
    else this.#form.append(name, value, fileName);
  }

  #encode() {
    if (this.#reader) return;
    const encoded = new Response(this.#form);
    const contentType = encoded.headers.get("content-type");
    const boundary = /boundary=(.+)$/.exec(contentType ?? "");
    assert.ok(boundary, `multipart content type expected, got ${contentType}`);
    this.#boundary = boundary[1];
    this.#reader = encoded.body.getReader();
  }

  getBoundary() {
    this.#encode();
    return this.#boundary;
  }

  _read() {
    this.#encode();
    this.#reader.read().then(
      ({ done, value }) => this.push(done ? null : Buffer.from(value)),
      (error) => this.destroy(error),
    );
  }
}

before(() => {
  globalThis.FormData = BrowserLikeFormData;
});
after(() => {
  globalThis.FormData = NodeFormData;
});
// node-fetch pools keep-alive sockets in Node's global agent. Start every test with an empty
// pool, so that a connection a test left broken fails that test only, not the next one.
afterEach(() => {
  http.globalAgent.destroy();
});

// ---------------------------------------------------------------------------------------------
// Tiny valid PNGs

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A 1x1 RGB PNG of one colour: a few dozen bytes that every image decoder accepts. */
function onePixelPng([r, g, b]) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(1, 0); // width
  header.writeUInt32BE(1, 4); // height
  header.set([8, 2, 0, 0, 0], 8); // 8-bit depth, truecolour, deflate, no filter, no interlace
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      pngChunk("IHDR", header),
      pngChunk("IDAT", deflateSync(Buffer.from([0, r, g, b]))), // filter byte 0, one pixel
      pngChunk("IEND", Buffer.alloc(0)),
    ]),
  );
}

// A 1x1 PNG published as a base64 constant, to be sure the builder above is not the only source.
const PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
const PNG = new Uint8Array(Buffer.from(PNG_BASE64, "base64"));
const RED_PNG = onePixelPng([255, 0, 0]);
const BLUE_PNG = onePixelPng([0, 0, 255]);

const pngBlob = (bytes = PNG) => new Blob([bytes], { type: "image/png" });
const avatarName = (user) => `user_${user._id}`;

/**
 * `client.storage.bucket(bucket).upload(fileName, blob)`, resolving to the client's result. The
 * client's promise only rejects when no HTTP answer could be read; that fails the test with the
 * network error and the usual cause: an error answered before the upload's body was read, after
 * which the server dropped the connection, either while this client was still sending (EPIPE on
 * the failing upload) or silently, without `Connection: close`, so that the client's keep-alive
 * pool reused the dead socket for the next request (EPIPE on the upload after an error).
 */
async function upload(client, bucket, fileName, blob) {
  try {
    return await client.storage.bucket(bucket).upload(fileName, blob);
  } catch (error) {
    assert.fail(
      `upload of ${fileName} (${blob.size} bytes) to ${bucket}: the client got no HTTP answer ` +
        `(${error.code ?? "no code"}: ${error.message}). Likely cause: this or an earlier upload was ` +
        "answered with an error before its body was read and the connection was then dropped, " +
        "mid-upload or without `Connection: close`.",
    );
  }
}

/** The tutorial's avatar upload; fails the test on errors. Returns the file metadata. */
async function uploadAvatar(client, user, bytes = PNG) {
  const result = await upload(client, "root", avatarName(user), pngBlob(bytes));
  expectOk(result, `upload of ${avatarName(user)}`);
  assert.ok(result.data && typeof result.data === "object", `file metadata expected: ${JSON.stringify(result)}`);
  return result.data;
}

/** GET like a browser's <img src>: no custom headers unless given. Returns status, headers, bytes. */
async function fetchPublic(url, headers = {}) {
  const response = await fetch(url, { headers });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, bytes };
}

function expectPublicPath(server, file) {
  assert.equal(typeof file.publicPath, "string", "publicPath is a string");
  assert.ok(
    file.publicPath.startsWith(`${server.url}/_storage/`),
    `publicPath is an absolute URL under ${server.url}/_storage/: ${file.publicPath}`,
  );
  assert.equal(new URL(file.publicPath).origin, server.url, "publicPath parses as an absolute URL");
}

async function expectServes(url, bytes, what = url) {
  const { status, headers, bytes: body } = await fetchPublic(url);
  assert.equal(status, 200, `GET ${what}`);
  assert.equal(headers.get("content-type"), "image/png", `content type of ${what}`);
  assert.deepEqual(body, bytes, `bytes of ${what}`);
}

const VERIFICATION_OFF = { BASALT_AUTH__EMAIL_VERIFICATION: "false" };

// ---------------------------------------------------------------------------------------------

describe("profile page: avatar and user info", () => {
  let server;
  before(async () => {
    server = await startServer({ env: VERIFICATION_OFF });
  });
  after(() => server?.close());

  test("the test PNGs are valid 1x1 images", () => {
    for (const png of [PNG, RED_PNG, BLUE_PNG]) {
      assert.deepEqual([...png.slice(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assert.equal(Buffer.from(png).toString("ascii", 12, 16), "IHDR");
      assert.equal(Buffer.from(png).toString("ascii", png.length - 8, png.length - 4), "IEND");
    }
    assert.notDeepEqual(RED_PNG, BLUE_PNG);
  });

  test("uploading the avatar answers the file metadata, typed from the part, not from options", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);
    const startedAt = Date.now();

    const result = await upload(client, "root", avatarName(user), pngBlob());

    expectOk(result, "avatar upload");
    const file = result.data;
    assert.equal(file.fileName, avatarName(user));
    assert.equal(file.mimeType, "image/png", "the part's type wins over options.contentType (text/plain)");
    assert.equal(file.size, PNG.length);
    assert.equal(file.isPublic, true, "root is public, so are its files by default");
    assert.equal(file.userId, user._id, "the uploader's session is recorded");
    assert.match(file._id, OBJECT_ID_RE);
    assert.match(file.bucketId, OBJECT_ID_RE);
    assert.equal(file.encoding, "7bit");
    assert.ok(Array.isArray(file.tags), "tags is an array");
    assert.match(file.uploadedAt, ISO_MS_RE);
    assert.match(file.updatedAt, ISO_MS_RE);
    assert.ok(Math.abs(Date.parse(file.uploadedAt) - startedAt) < 60_000, "uploadedAt is about now");
    expectPublicPath(server, file);
    assert.ok(client.auth.getSession(), "the uploader is still signed in");
  });

  test("the public path serves the bytes to a plain browser request, with ETag, 304 and ranges", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);
    const file = await uploadAvatar(client, user, RED_PNG);

    const first = await fetchPublic(file.publicPath);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("content-type"), "image/png");
    assert.deepEqual(first.bytes, RED_PNG, "the stored bytes come back unchanged");
    const etag = first.headers.get("etag");
    assert.ok(etag, "an ETag header is sent");

    const revalidated = await fetchPublic(file.publicPath, { "If-None-Match": etag });
    assert.equal(revalidated.status, 304, "If-None-Match with the current ETag answers 304");
    assert.equal(revalidated.bytes.length, 0, "a 304 has no body");

    const stale = await fetchPublic(file.publicPath, { "If-None-Match": '"not-the-etag"' });
    assert.equal(stale.status, 200, "another ETag gets the full answer");
    assert.deepEqual(stale.bytes, RED_PNG);

    const ranged = await fetchPublic(file.publicPath, { Range: "bytes=0-3" });
    assert.equal(ranged.status, 206);
    assert.deepEqual(ranged.bytes, RED_PNG.slice(0, 4));
    assert.equal(ranged.headers.get("content-range"), `bytes 0-3/${RED_PNG.length}`);
  });

  test("profilePicture, then name: each update answers the whole user; auth reads and sign-in see both", QUICK, async () => {
    const { client, user, email, password } = await signUpWithSession(server, { name: "Ada" });
    const file = await uploadAvatar(client, user);
    const users = client.db.model("users");

    const withPicture = await users.object(user._id).update({ profilePicture: file.publicPath });

    expectOk(withPicture, "update of profilePicture");
    assert.equal(withPicture.data._id, user._id);
    assert.equal(withPicture.data.email, email, "the whole user comes back, not just the written field");
    assert.equal(withPicture.data.name, "Ada", "fields not written are kept");
    assert.equal(withPicture.data.profilePicture, file.publicPath);
    assert.ok(!("password" in withPicture.data), "no password in database answers");

    const renamed = await users.object(user._id).update({ name: "Ada Lovelace" });

    expectOk(renamed, "update of name");
    assert.equal(renamed.data._id, user._id);
    assert.equal(renamed.data.email, email);
    assert.equal(renamed.data.name, "Ada Lovelace");
    assert.equal(renamed.data.profilePicture, file.publicPath, "the update merges, it does not replace");
    assert.ok(!("password" in renamed.data), "no password in database answers");

    const me = await client.auth.getUserFromDB();
    expectOk(me, "getUserFromDB");
    assert.equal(me.user.name, "Ada Lovelace");
    assert.equal(me.user.profilePicture, file.publicPath);

    const later = newClient(server);
    const signIn = await later.auth.signInWithEmail(email, password);
    expectOk(signIn, "sign-in after the profile changes");
    assert.equal(signIn.user._id, user._id);
    assert.equal(signIn.user.name, "Ada Lovelace");
    assert.equal(signIn.user.profilePicture, file.publicPath);
    assert.ok(!("password" in signIn.user));
  });

  test("uploading the same name again succeeds with user_<id>-1 and a new public path", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);
    const first = await uploadAvatar(client, user, RED_PNG);
    assert.equal(first.fileName, avatarName(user));

    const second = await uploadAvatar(client, user, BLUE_PNG);
    const third = await uploadAvatar(client, user, PNG);

    assert.equal(second.fileName, `${avatarName(user)}-1`);
    assert.equal(third.fileName, `${avatarName(user)}-2`);
    assert.notEqual(second._id, first._id);
    assert.notEqual(second.publicPath, first.publicPath, "a new URL busts browser caches");
    assert.notEqual(third.publicPath, second.publicPath);
    expectPublicPath(server, second);
    await expectServes(first.publicPath, RED_PNG, "the first avatar");
    await expectServes(second.publicPath, BLUE_PNG, "the second avatar");
    await expectServes(third.publicPath, PNG, "the third avatar");
  });
});

describe("profile page: access rules", () => {
  let server;
  let ada; // { client, user, email, password } with name and profilePicture set
  let eve;
  before(async () => {
    server = await startServer({ env: VERIFICATION_OFF });
    ada = await signUpWithSession(server, { name: "Ada" });
    const file = await uploadAvatar(ada.client, ada.user);
    ada.picture = file.publicPath;
    expectOk(await ada.client.db.model("users").object(ada.user._id).update({ profilePicture: ada.picture }));
    eve = await signUpWithSession(server, { name: "Eve" });
  });
  after(() => server?.close());

  test("another user cannot update someone's users object: not_allowed", QUICK, async () => {
    const result = await eve.client.db.model("users").object(ada.user._id).update({ name: "x" });

    expectError(result, "not_allowed", 403);
    const me = await ada.client.auth.getUserFromDB();
    expectOk(me);
    assert.equal(me.user.name, "Ada", "the refused update changed nothing");
    assert.ok(eve.client.auth.getSession(), "a refusal does not sign the caller out");
  });

  test("another user reads only _id, name and profilePicture; the owner reads the whole object", QUICK, async () => {
    const seen = await eve.client.db.model("users").object(ada.user._id).get();

    expectOk(seen);
    assert.deepEqual(
      Object.keys(seen.data).sort(),
      ["_id", "name", "profilePicture"],
      `public view of another user: ${JSON.stringify(seen.data)}`,
    );
    assert.equal(seen.data._id, ada.user._id);
    assert.equal(seen.data.name, "Ada");
    assert.equal(seen.data.profilePicture, ada.picture);

    const own = await ada.client.db.model("users").object(ada.user._id).get();
    expectOk(own);
    assert.equal(own.data.email, ada.email, "the owner sees their email");
    assert.equal(own.data.profilePicture, ada.picture);
    assert.ok(!("password" in own.data), "no password in database answers");
  });

  test("a system field such as email cannot be written through the database: validation_error", QUICK, async () => {
    const result = await ada.client.db.model("users").object(ada.user._id).update({ email: "evil@example.com" });

    expectError(result, "validation_error", 400);
    const me = await ada.client.auth.getUserFromDB();
    expectOk(me);
    assert.equal(me.user.email, ada.email, "the email is unchanged");
    expectOk(await newClient(server).auth.signInWithEmail(ada.email, ada.password), "sign-in with the old email");
  });

  test("an unknown model answers model_not_found", QUICK, async () => {
    const result = await ada.client.db.model("orders").object("x").get();

    expectError(result, "model_not_found", 400);
  });

  test("uploading to an unknown bucket answers bucket_not_found", QUICK, async () => {
    const result = await upload(ada.client, "no-such-bucket", avatarName(ada.user), pngBlob());

    expectError(result, "bucket_not_found", 400);
    assert.ok(ada.client.auth.getSession(), "the uploader stays signed in");
  });

  test("uploading without a session answers missing_session_token and stores nothing", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);
    const anonymous = newClient(server);

    const result = await upload(anonymous, "root", avatarName(user), pngBlob(RED_PNG));

    expectError(result, "missing_session_token", 401);
    const file = await uploadAvatar(client, user);
    assert.equal(file.fileName, avatarName(user), "the refused upload did not take the name");
  });
});

describe("profile page: upload size limit", () => {
  const LIMIT = 1024;
  let server;
  before(async () => {
    server = await startServer({ env: { ...VERIFICATION_OFF, BASALT_STORAGE__MAX_FILE_BYTES: String(LIMIT) } });
  });
  after(() => server?.close());

  const bytesOf = (length) => new Uint8Array(length).map((_, i) => (i * 7) & 0xff);

  test("a 4 KiB avatar answers file_too_large and leaves nothing behind", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);

    const result = await upload(client, "root", avatarName(user), pngBlob(bytesOf(4096)));

    expectError(result, "file_too_large", 413);
    assert.ok(client.auth.getSession(), "the uploader stays signed in");
    const file = await uploadAvatar(client, user);
    assert.equal(file.fileName, avatarName(user), "the failed upload did not take the name");
    assert.equal(file.size, PNG.length);
    await expectServes(file.publicPath, PNG);
  });

  test("the limit counts file bytes: exactly the limit is accepted, one byte more is not", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);

    const over = await upload(client, "root", avatarName(user), pngBlob(bytesOf(LIMIT + 1)));
    expectError(over, "file_too_large", 413);

    const atLimit = await uploadAvatar(client, user, bytesOf(LIMIT));
    assert.equal(atLimit.fileName, avatarName(user));
    assert.equal(atLimit.size, LIMIT);
    await expectServes(atLimit.publicPath, bytesOf(LIMIT));
  });

  test("a body far over the limit still answers file_too_large as JSON, and the user can go on", QUICK, async () => {
    const { client, user } = await signUpWithSession(server);

    const result = await upload(client, "root", avatarName(user), pngBlob(bytesOf(512 * 1024)));

    expectError(result, "file_too_large", 413);
    const file = await uploadAvatar(client, user);
    assert.equal(file.fileName, avatarName(user));
  });
});

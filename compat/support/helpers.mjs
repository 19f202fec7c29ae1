// Small helpers shared by the compatibility tests: clients, users, mail, links and assertions.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { createClient } from "altogic";
import { APP_REDIRECT_URL } from "./server.mjs";

export { APP_REDIRECT_URL };

/** Secrets are 32 random bytes as base64url without padding (SECURITY.md "Tokens"). */
export const TOKEN_RE = /^[A-Za-z0-9_-]{43,}$/;
export const OBJECT_ID_RE = /^[0-9a-f]{24}$/;
export const ISO_MS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const CHROME_ON_MAC =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36";

/** Per-test timeouts: a server answering a non-JSON error body makes the client hang forever. */
export const QUICK = { timeout: 30_000 };
export const SLOW = { timeout: 120_000 };

// ---------------------------------------------------------------------------------------------
// Clients and users

/** A localStorage stand-in over a Map (the client calls getItem/setItem/removeItem only). */
export function memoryStorage(initial = {}) {
  const items = new Map(Object.entries(initial));
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => void items.set(key, String(value)),
    removeItem: (key) => void items.delete(key),
  };
}

/**
 * The real altogic client pointed at `server`. `userAgent` replaces node-fetch's User-Agent
 * header (the client keeps its default headers on `auth.fetcher.headers`).
 */
export function newClient(server, { storage = memoryStorage(), userAgent, key = server.key } = {}) {
  const client = createClient(server.url, key, { localStorage: storage });
  if (userAgent) client.auth.fetcher.headers["User-Agent"] = userAgent;
  return client;
}

/** `ada+<random>@example.com`: unique per call; the `+` must survive unencoded query strings. */
export function uniqueEmail(name = "ada") {
  return `${name}+${randomBytes(6).toString("hex")}@example.com`;
}

/** A long, uncommon password. */
export function newPassword() {
  return `basalt ${randomBytes(8).toString("hex")} pw`;
}

/** Signs a new client in; fails the test if that does not work. */
export async function signedInClient(server, email, password, options = {}) {
  const client = newClient(server, options);
  const result = await client.auth.signInWithEmail(email, password);
  expectOk(result, `sign-in of ${email}`);
  return client;
}

/**
 * Server with email verification on: signs up, follows the emailed confirm link and redeems the
 * grant. Returns the signed-in client with the account's credentials.
 */
export async function signUpVerified(server, { email = uniqueEmail(), password = newPassword(), name = "Ada" } = {}) {
  const client = newClient(server);
  const signUp = await client.auth.signUpWithEmail(email, password, name);
  expectOk(signUp, `sign-up of ${email}`);
  const mail = await waitForMail(server, mailWithLink(email, "confirm"));
  const accessToken = expectAppRedirect(await follow(linkFrom(mail, "confirm")), "email-confirm");
  const grant = await client.auth.getAuthGrant(accessToken);
  expectOk(grant, "grant after email confirmation");
  return { client, email, password, user: grant.user, session: grant.session };
}

/** Server with email verification off: signs up and gets a session at once. */
export async function signUpWithSession(server, { email = uniqueEmail(), password = newPassword(), name = "Ada" } = {}) {
  const client = newClient(server);
  const signUp = await client.auth.signUpWithEmail(email, password, name);
  expectOk(signUp, `sign-up of ${email}`);
  assert.ok(signUp.session, "sign-up with verification off returns a session");
  return { client, email, password, user: signUp.user, session: signUp.session };
}

/** A client that presents `token` as its Session header (as after `auth.setSession`). */
export function clientWithToken(server, token) {
  const client = newClient(server);
  client.auth.setSession({ token });
  return client;
}

// ---------------------------------------------------------------------------------------------
// Assertions on client results

/** The client call succeeded: `errors` is null. */
export function expectOk(result, what = "call") {
  assert.equal(result.errors, null, `${what} failed: ${JSON.stringify(result.errors)}`);
}

/**
 * The client call failed with `code` (and HTTP `status` if given), in the protocol's error
 * envelope: every item has string `origin`, `code` and `message`. Returns the matching item.
 */
export function expectError(result, code, status) {
  assert.ok(result.errors, `expected error ${code}, but the call succeeded: ${JSON.stringify(result)}`);
  const { items } = result.errors;
  assert.ok(Array.isArray(items) && items.length >= 1, `error without items: ${JSON.stringify(result.errors)}`);
  for (const item of items) {
    assert.equal(typeof item.origin, "string", `error item without origin: ${JSON.stringify(item)}`);
    assert.equal(typeof item.code, "string", `error item without code: ${JSON.stringify(item)}`);
    assert.equal(typeof item.message, "string", `error item without message: ${JSON.stringify(item)}`);
  }
  const item = items.find((entry) => entry.code === code);
  assert.ok(item, `expected error code ${code}, got ${JSON.stringify(items)}`);
  if (status !== undefined) assert.equal(result.errors.status, status, `HTTP status of ${code}`);
  return item;
}

/** The client still holds a session and the server still accepts it. */
export async function expectSignedIn(client, userId) {
  assert.ok(client.auth.getSession(), "client keeps its local session");
  const me = await client.auth.getUserFromDB();
  expectOk(me, "getUserFromDB");
  if (userId) assert.equal(me.user._id, userId);
  return me.user;
}

/** The server refuses the client's session and the client dropped its local session. */
export async function expectSignedOut(client) {
  const me = await client.auth.getUserFromDB();
  expectError(me, "invalid_session_token", 401);
  assert.equal(client.auth.getSession(), null, "client cleared its local session");
  assert.equal(client.auth.getUser(), null, "client cleared its local user");
}

/** Sessions are refused when presented directly. */
export async function expectTokenRefused(server, token) {
  const me = await clientWithToken(server, token).auth.getUserFromDB();
  expectError(me, "invalid_session_token", 401);
}

/** A User object as protocol.md §2.1 describes it. */
export function expectUserShape(user) {
  assert.ok(user && typeof user === "object", `user object expected, got ${JSON.stringify(user)}`);
  assert.match(user._id, OBJECT_ID_RE);
  assert.equal(user.provider, "altogic");
  assert.equal(user.providerUserId, user._id);
  assert.equal(typeof user.email, "string");
  assert.equal(typeof user.emailVerified, "boolean");
  assert.match(user.signUpAt, ISO_MS_RE);
  assert.match(user.lastLoginAt, ISO_MS_RE);
  assert.ok(!("password" in user), "user objects never carry a password");
}

/** A Session object as protocol.md §2.2 describes it. */
export function expectSessionShape(session, userId) {
  assert.ok(session && typeof session === "object", `session object expected, got ${JSON.stringify(session)}`);
  if (userId) assert.equal(session.userId, userId);
  assert.equal(typeof session.token, "string");
  assert.match(session.creationDtm, ISO_MS_RE);
  assert.ok(Array.isArray(session.accessGroupKeys), "accessGroupKeys is an array");
  const agent = session.userAgent;
  assert.ok(agent && typeof agent === "object", "session has a userAgent object");
  for (const leaf of ["family", "major", "minor", "patch"]) {
    assert.equal(typeof agent[leaf], "string", `userAgent.${leaf} is a string`);
    assert.equal(typeof agent.device?.[leaf], "string", `userAgent.device.${leaf} is a string`);
    assert.equal(typeof agent.os?.[leaf], "string", `userAgent.os.${leaf} is a string`);
  }
}

// ---------------------------------------------------------------------------------------------
// Mail (the dev mailbox at /_dev/mail; delivered by a background worker, so poll)

function recipients(mail) {
  return [mail.to ?? []]
    .flat()
    .map((entry) => (typeof entry === "string" ? entry : entry?.address ?? JSON.stringify(entry)))
    .join(" ")
    .toLowerCase();
}

/** Predicate: the mail is addressed to `email`. */
export const mailTo = (email) => (mail) => recipients(mail).includes(email.toLowerCase());

/** Predicate: the mail is addressed to `email` and its text holds a `/_auth/email/<kind>` link. */
export const mailWithLink = (email, kind) => (mail) =>
  mailTo(email)(mail) && String(mail.text ?? "").includes(`/_auth/email/${kind}?token=`);

function newestFirst(mails) {
  return [...mails].sort((a, b) => (Date.parse(b.sentAt) || 0) - (Date.parse(a.sentAt) || 0));
}

function describeMailbox(mails) {
  return JSON.stringify(mails.map(({ to, subject, sentAt }) => ({ to, subject, sentAt })));
}

/** Waits until at least `count` mails match; returns the matches, newest first. */
export async function waitForMails(server, predicate, { count = 1, timeoutMs = 5_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mails = await server.mail();
    const hits = newestFirst(mails.filter(predicate));
    if (hits.length >= count) return hits;
    if (Date.now() > deadline) {
      assert.fail(`waited ${timeoutMs} ms for ${count} matching mail(s), found ${hits.length}; mailbox: ${describeMailbox(mails)}`);
    }
    await delay(50);
  }
}

/** Waits for a mail matching `predicate`; returns the newest match. */
export async function waitForMail(server, predicate, timeoutMs = 5_000) {
  const [mail] = await waitForMails(server, predicate, { timeoutMs });
  return mail;
}

/**
 * Watches the mailbox for `quietMs` and fails if more than `already` mails match. Tests first
 * wait for a later "sentinel" mail, so the worker has already passed the one that must not exist.
 */
export async function expectNoMail(server, predicate, { already = 0, quietMs = 750 } = {}) {
  const deadline = Date.now() + quietMs;
  do {
    const mails = await server.mail();
    const hits = mails.filter(predicate);
    assert.ok(hits.length <= already, `unexpected mail: ${describeMailbox(hits)}`);
    await delay(50);
  } while (Date.now() < deadline);
}

// ---------------------------------------------------------------------------------------------
// Email links and the redirect to the app

/**
 * The first `http(s)://…/_auth/email/<kind>?token=…` link in the mail's text.
 * `kind` is `confirm`, `magic`, `reset` or `change` (a leading `/_auth/email/` is accepted).
 */
export function linkFrom(mail, kind) {
  const name = kind.replace(/^\/?(_auth\/email\/)?/, "");
  const text = String(mail.text ?? "");
  const found = new RegExp(`https?://[^\\s"'<>]+?/_auth/email/${name}\\?token=[^\\s"'<>)\\]]+`).exec(text);
  assert.ok(found, `no /_auth/email/${name} link in the mail text:\n${text}`);
  const link = found[0].replace(/[.,;:!?]+$/, "");
  assert.match(new URL(link).searchParams.get("token"), TOKEN_RE, `link token is URL-safe: ${link}`);
  return link;
}

/** Opens an email link like a browser would (no headers); it must 302. Returns the target URL. */
export async function follow(link) {
  const response = await fetch(link, { redirect: "manual" });
  const body = await response.text();
  assert.equal(response.status, 302, `GET ${link} should redirect; got ${response.status} ${body}`);
  const location = response.headers.get("location");
  assert.ok(location, "redirect has a Location header");
  return new URL(location, link);
}

/**
 * A successful redirect to the app: `status=200&action=<action>[&access_token=…]`, parameters in
 * that order. Returns the access token (or null when `withToken` is false).
 */
export function expectAppRedirect(target, action, { withToken = true } = {}) {
  assert.equal(`${target.origin}${target.pathname}`, APP_REDIRECT_URL, "redirects to the configured app URL");
  const expectedKeys = withToken ? ["status", "action", "access_token"] : ["status", "action"];
  assert.deepEqual([...target.searchParams.keys()], expectedKeys, `parameters of ${target}`);
  assert.equal(target.searchParams.get("status"), "200");
  assert.equal(target.searchParams.get("action"), action);
  if (!withToken) return null;
  const accessToken = target.searchParams.get("access_token");
  assert.match(accessToken, TOKEN_RE, "access_token is URL-safe");
  return accessToken;
}

/** A failed link: `status=400&action=<action>&error=<message>`, no access token. */
export function expectAppRedirectError(target, action) {
  assert.equal(`${target.origin}${target.pathname}`, APP_REDIRECT_URL, "redirects to the configured app URL");
  assert.deepEqual([...target.searchParams.keys()], ["status", "action", "error"], `parameters of ${target}`);
  assert.equal(target.searchParams.get("status"), "400");
  assert.equal(target.searchParams.get("action"), action);
  assert.ok(target.searchParams.get("error").length > 0, "error message is not empty");
}

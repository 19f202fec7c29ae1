// Listing and ending sessions (email verification off, so sign-up signs in at once).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  CHROME_ON_MAC,
  QUICK,
  clientWithToken,
  expectError,
  expectOk,
  expectSessionShape,
  expectSignedIn,
  expectSignedOut,
  expectTokenRefused,
  newClient,
  signUpWithSession,
  signedInClient,
} from "../support/helpers.mjs";

describe("sessions", () => {
  let server;
  before(async () => {
    server = await startServer({ env: { BASALT_AUTH__EMAIL_VERIFICATION: "false" } });
  });
  after(() => server?.close());

  /** One account signed in on two devices: `first` (by sign-up) and then `second`. */
  async function twoDevices() {
    const account = await signUpWithSession(server);
    const second = await signedInClient(server, account.email, account.password);
    return { ...account, first: account.client, second };
  }

  test("the list holds both sessions oldest first, with my own token and ref_ handles for the other", QUICK, async () => {
    const { user, first, second } = await twoDevices();
    const firstToken = first.auth.getSession().token;
    const secondToken = second.auth.getSession().token;

    const { sessions, errors } = await second.auth.getAllSessions();

    assert.equal(errors, null);
    assert.ok(Array.isArray(sessions), "a bare array");
    assert.equal(sessions.length, 2);
    for (const session of sessions) expectSessionShape(session, user._id);
    assert.ok(Date.parse(sessions[0].creationDtm) <= Date.parse(sessions[1].creationDtm), "ordered by creationDtm");
    assert.equal(sessions[1].token, secondToken, "the caller sees its own token");
    assert.ok(sessions[0].token.startsWith("ref_"), `the other session is a ref_ handle: ${sessions[0].token}`);
    assert.ok(!sessions[0].token.includes(firstToken), "the handle does not reveal the other device's token");

    const fromFirst = await first.auth.getAllSessions();
    expectOk(fromFirst);
    assert.equal(fromFirst.sessions[0].token, firstToken);
    assert.ok(fromFirst.sessions[1].token.startsWith("ref_"));
  });

  test("a ref_ handle is not accepted as a Session header", QUICK, async () => {
    const { second } = await twoDevices();
    const { sessions } = await second.auth.getAllSessions();
    const handle = sessions.find((session) => session.token.startsWith("ref_")).token;

    await expectTokenRefused(server, handle);
  });

  test("signOut with another session's handle ends that session only", QUICK, async () => {
    const { user, first, second } = await twoDevices();
    const { sessions } = await second.auth.getAllSessions();
    const handle = sessions.find((session) => session.token.startsWith("ref_")).token;

    expectOk(await second.auth.signOut(handle));

    await expectSignedIn(second, user._id);
    await expectSignedOut(first);
    const remaining = await second.auth.getAllSessions();
    expectOk(remaining);
    assert.equal(remaining.sessions.length, 1);
    assert.equal(remaining.sessions[0].token, second.auth.getSession().token);
  });

  test("signOut with an unknown token answers session_not_found and keeps the caller signed in", QUICK, async () => {
    const { user, second } = await twoDevices();

    const result = await second.auth.signOut("bogus");

    expectError(result, "session_not_found", 400);
    await expectSignedIn(second, user._id);
  });

  test("signOut cannot end another user's session", QUICK, async () => {
    const mine = await signUpWithSession(server);
    const theirs = await signUpWithSession(server);

    const result = await mine.client.auth.signOut(theirs.session.token);

    expectError(result, "session_not_found", 400);
    await expectSignedIn(mine.client, mine.user._id);
    await expectSignedIn(theirs.client, theirs.user._id);
  });

  test("signOut() ends the current session and clears the client", QUICK, async () => {
    const { user, first, second } = await twoDevices();
    const firstToken = first.auth.getSession().token;

    expectOk(await first.auth.signOut());

    assert.equal(first.auth.getSession(), null);
    assert.equal(first.auth.getUser(), null);
    await expectTokenRefused(server, firstToken);
    await expectSignedIn(second, user._id);
  });

  test("signOutAllExceptCurrent ends every other session and keeps mine", QUICK, async () => {
    const { user, email, password, first, second } = await twoDevices();
    const third = await signedInClient(server, email, password);

    expectOk(await second.auth.signOutAllExceptCurrent());

    await expectSignedIn(second, user._id);
    await expectSignedOut(first);
    await expectSignedOut(third);
    const { sessions } = await second.auth.getAllSessions();
    assert.equal(sessions.length, 1);
  });

  test("signOutAll ends every session, mine included, and clears the client", QUICK, async () => {
    const { first, second } = await twoDevices();
    const secondToken = second.auth.getSession().token;

    expectOk(await second.auth.signOutAll());

    assert.equal(second.auth.getSession(), null);
    await expectTokenRefused(server, secondToken);
    await expectSignedOut(first);
  });

  test("session endpoints without a Session header answer missing_session_token", QUICK, async () => {
    const result = await newClient(server).auth.getAllSessions();

    expectError(result, "missing_session_token", 401);
  });

  test("an unknown Session header answers invalid_session_token and the client drops it", QUICK, async () => {
    const client = clientWithToken(server, "x".repeat(43));

    await expectSignedOut(client);
  });

  test("the session records the browser's parsed User-Agent", QUICK, async () => {
    const { email, password } = await signUpWithSession(server);
    const browser = newClient(server, { userAgent: CHROME_ON_MAC });

    const { session } = await browser.auth.signInWithEmail(email, password);

    expectSessionShape(session);
    assert.equal(session.userAgent.family, "Chrome");
    assert.equal(session.userAgent.major, "122");
    assert.equal(session.userAgent.os.family, "Mac OS X");
    const { sessions } = await browser.auth.getAllSessions();
    const listed = sessions.find((entry) => entry.token === session.token);
    assert.equal(listed.userAgent.family, "Chrome");
  });
});

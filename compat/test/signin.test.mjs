// Sign-in with email and password (email verification on).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  QUICK,
  expectError,
  expectOk,
  expectSessionShape,
  expectSignedIn,
  expectUserShape,
  memoryStorage,
  newClient,
  newPassword,
  signUpVerified,
  signedInClient,
  uniqueEmail,
} from "../support/helpers.mjs";

describe("sign-in", () => {
  let server;
  let ada; // a verified account
  before(async () => {
    server = await startServer();
    ada = await signUpVerified(server);
  });
  after(() => server?.close());

  test("the right password signs in and returns the user and a session", QUICK, async () => {
    const client = newClient(server);

    const result = await client.auth.signInWithEmail(ada.email, ada.password);

    expectOk(result);
    expectUserShape(result.user);
    assert.equal(result.user._id, ada.user._id);
    assert.equal(result.user.emailVerified, true);
    expectSessionShape(result.session, ada.user._id);
    assert.notEqual(result.session.token, ada.session.token, "every sign-in is a new session");
    assert.equal(client.auth.getSession().token, result.session.token);
    assert.equal(client.auth.getUser()._id, ada.user._id);
    await expectSignedIn(client, ada.user._id);
  });

  test("a wrong password is refused with invalid_credentials", QUICK, async () => {
    const client = newClient(server);

    const result = await client.auth.signInWithEmail(ada.email, "not the password at all");

    expectError(result, "invalid_credentials", 400);
    assert.equal(result.user, null);
    assert.equal(client.auth.getSession(), null);
  });

  test("an unknown email gets the same code and message as a wrong password", QUICK, async () => {
    const wrongPassword = await newClient(server).auth.signInWithEmail(ada.email, "not the password at all");
    const unknownEmail = await newClient(server).auth.signInWithEmail(uniqueEmail("nobody"), "not the password at all");

    const wrong = expectError(wrongPassword, "invalid_credentials", 400);
    const unknown = expectError(unknownEmail, "invalid_credentials", 400);
    assert.equal(unknown.message, wrong.message);
    assert.deepEqual(unknownEmail.errors.items, wrongPassword.errors.items);
  });

  test("an unverified account is told email_not_verified only after the right password", QUICK, async () => {
    const email = uniqueEmail();
    const password = newPassword();
    expectOk(await newClient(server).auth.signUpWithEmail(email, password, "Ada"));

    const right = await newClient(server).auth.signInWithEmail(email, password);
    expectError(right, "email_not_verified", 400);
    assert.equal(right.session, null);

    const wrong = await newClient(server).auth.signInWithEmail(email, "not the password at all");
    expectError(wrong, "invalid_credentials", 400);
  });

  test("a stale Session header restored from storage does not block public endpoints", QUICK, async () => {
    const device = await signedInClient(server, ada.email, ada.password);
    const staleSession = device.auth.getSession();
    const staleUser = device.auth.getUser();
    expectOk(await device.auth.signOut());

    // The app restarts and the client restores the revoked session from localStorage.
    const restored = () =>
      newClient(server, {
        storage: memoryStorage({ session: JSON.stringify(staleSession), user: JSON.stringify(staleUser) }),
      });

    const magic = await restored().auth.sendMagicLinkEmail(ada.email);
    expectOk(magic, "send-magic with a stale Session header");

    const signUp = await restored().auth.signUpWithEmail(uniqueEmail(), newPassword(), "Bea");
    expectOk(signUp, "sign-up with a stale Session header");

    const client = restored();
    assert.equal(client.auth.getSession().token, staleSession.token, "the client sends the stale token");
    const signIn = await client.auth.signInWithEmail(ada.email, ada.password);
    expectOk(signIn, "sign-in with a stale Session header");
    assert.notEqual(signIn.session.token, staleSession.token);
    await expectSignedIn(client, ada.user._id);
  });
});

// Password reset by emailed link (email verification on).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  QUICK,
  expectAppRedirect,
  expectError,
  expectNoMail,
  expectOk,
  expectSignedIn,
  expectSignedOut,
  follow,
  linkFrom,
  mailTo,
  mailWithLink,
  newClient,
  signUpVerified,
  signedInClient,
  uniqueEmail,
  waitForMail,
} from "../support/helpers.mjs";

const NEW_PASSWORD = "new long password 42";

describe("password reset", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  /** Asks for a reset mail and follows its link; returns the reset access token. */
  async function resetToken(email) {
    expectOk(await newClient(server).auth.sendResetPwdEmail(email));
    const mail = await waitForMail(server, mailWithLink(email, "reset"));
    return expectAppRedirect(await follow(linkFrom(mail, "reset")), "reset-pwd");
  }

  test("the reset link sets a new password and signs every old session out", QUICK, async () => {
    const { client: first, email, password, user } = await signUpVerified(server);
    const second = await signedInClient(server, email, password);
    const resetter = newClient(server);
    const accessToken = await resetToken(email);

    const result = await resetter.auth.resetPwdWithToken(accessToken, NEW_PASSWORD);

    expectOk(result);
    assert.equal(resetter.auth.getSession(), null, "resetting does not sign in");
    await expectSignedOut(first);
    await expectSignedOut(second);
    const withNew = newClient(server);
    expectOk(await withNew.auth.signInWithEmail(email, NEW_PASSWORD), "sign-in with the new password");
    await expectSignedIn(withNew, user._id);
    expectError(await newClient(server).auth.signInWithEmail(email, password), "invalid_credentials", 400);
  });

  test("a reset token works once; reusing it answers invalid_access_token", QUICK, async () => {
    const { email } = await signUpVerified(server);
    const accessToken = await resetToken(email);
    expectOk(await newClient(server).auth.resetPwdWithToken(accessToken, NEW_PASSWORD));

    const again = await newClient(server).auth.resetPwdWithToken(accessToken, "another long password 43");

    expectError(again, "invalid_access_token", 400);
    expectOk(await newClient(server).auth.signInWithEmail(email, NEW_PASSWORD), "the first reset stands");
  });

  test("a weak new password is refused and the reset token stays usable", QUICK, async () => {
    const { email } = await signUpVerified(server);
    const accessToken = await resetToken(email);

    const weak = await newClient(server).auth.resetPwdWithToken(accessToken, "abc");

    expectError(weak, "validation_error", 400);
    expectOk(await newClient(server).auth.resetPwdWithToken(accessToken, NEW_PASSWORD));
  });

  test("a bogus reset key answers invalid_access_token and leaves the caller signed in", QUICK, async () => {
    const { client, user } = await signUpVerified(server);

    const result = await client.auth.resetPwdWithToken("x".repeat(43), NEW_PASSWORD);

    expectError(result, "invalid_access_token", 400);
    await expectSignedIn(client, user._id);
  });

  test("an unknown address gets the same answer and no mail", QUICK, async () => {
    const known = await signUpVerified(server);
    const unknown = uniqueEmail("nobody");

    const forUnknown = await newClient(server).auth.sendResetPwdEmail(unknown);
    const forKnown = await newClient(server).auth.sendResetPwdEmail(known.email);

    assert.deepEqual(forUnknown, forKnown);
    expectOk(forUnknown);
    await waitForMail(server, mailWithLink(known.email, "reset"));
    await expectNoMail(server, mailTo(unknown));
  });
});

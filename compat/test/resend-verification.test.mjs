// Resending the verification mail (email verification on).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  QUICK,
  expectAppRedirect,
  expectAppRedirectError,
  expectNoMail,
  expectOk,
  expectSignedIn,
  follow,
  linkFrom,
  mailTo,
  mailWithLink,
  newClient,
  newPassword,
  signUpVerified,
  uniqueEmail,
  waitForMail,
  waitForMails,
} from "../support/helpers.mjs";

describe("resend verification email", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  /** Signs up an unverified account and waits for its first confirmation mail. */
  async function unverifiedAccount() {
    const email = uniqueEmail();
    expectOk(await newClient(server).auth.signUpWithEmail(email, newPassword(), "Ada"));
    await waitForMail(server, mailWithLink(email, "confirm"));
    return email;
  }

  test("an unverified account gets a new confirmation mail whose link works", QUICK, async () => {
    const email = await unverifiedAccount();

    const result = await newClient(server).auth.resendVerificationEmail(email);

    expectOk(result);
    const [newest, original] = await waitForMails(server, mailWithLink(email, "confirm"), { count: 2 });
    const newLink = linkFrom(newest, "confirm");
    assert.notEqual(newLink, linkFrom(original, "confirm"), "the new mail carries a new link");
    expectAppRedirectError(await follow(linkFrom(original, "confirm")), "email-confirm");

    const accessToken = expectAppRedirect(await follow(newLink), "email-confirm");
    const client = newClient(server);
    const grant = await client.auth.getAuthGrant(accessToken);
    expectOk(grant);
    assert.equal(grant.user.email, email);
    assert.equal(grant.user.emailVerified, true);
    await expectSignedIn(client, grant.user._id);
  });

  test("a verified account gets nothing, with the same answer", QUICK, async () => {
    const verified = await signUpVerified(server);
    const pending = await unverifiedAccount();

    const forVerified = await newClient(server).auth.resendVerificationEmail(verified.email);
    const forPending = await newClient(server).auth.resendVerificationEmail(pending);

    assert.deepEqual(forVerified, forPending);
    expectOk(forVerified);
    await waitForMails(server, mailWithLink(pending, "confirm"), { count: 2 });
    await expectNoMail(server, mailTo(verified.email), { already: 1 });
  });

  test("an unknown address gets nothing, with the same answer", QUICK, async () => {
    const unknown = uniqueEmail("nobody");
    const pending = await unverifiedAccount();

    const forUnknown = await newClient(server).auth.resendVerificationEmail(unknown);
    const forPending = await newClient(server).auth.resendVerificationEmail(pending);

    assert.deepEqual(forUnknown, forPending);
    expectOk(forUnknown);
    await waitForMails(server, mailWithLink(pending, "confirm"), { count: 2 });
    await expectNoMail(server, mailTo(unknown));
  });
});

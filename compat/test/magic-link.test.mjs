// Magic link sign-in (email verification on).

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
  follow,
  linkFrom,
  mailTo,
  mailWithLink,
  newClient,
  newPassword,
  signUpVerified,
  uniqueEmail,
  waitForMail,
} from "../support/helpers.mjs";

describe("magic link", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  test("an existing account gets a magic link whose grant signs it in", QUICK, async () => {
    const { email, user } = await signUpVerified(server);
    const client = newClient(server);

    const sent = await client.auth.sendMagicLinkEmail(email);

    expectOk(sent);
    const mail = await waitForMail(server, mailWithLink(email, "magic"));
    const accessToken = expectAppRedirect(await follow(linkFrom(mail, "magic")), "magic-link");
    const grant = await client.auth.getAuthGrant(accessToken);
    expectOk(grant);
    assert.equal(grant.user._id, user._id);
    assert.equal(grant.session.userId, user._id);
    await expectSignedIn(client, user._id);
  });

  test("an unknown address gets the same answer and no mail", QUICK, async () => {
    const known = await signUpVerified(server);
    const unknown = uniqueEmail("nobody");

    const forUnknown = await newClient(server).auth.sendMagicLinkEmail(unknown);
    const forKnown = await newClient(server).auth.sendMagicLinkEmail(known.email);

    assert.deepEqual(forUnknown, forKnown);
    expectOk(forUnknown);
    await waitForMail(server, mailWithLink(known.email, "magic"));
    await expectNoMail(server, mailTo(unknown));
  });

  test("a magic link to an unverified account verifies it and voids the sign-up password", QUICK, async () => {
    const email = uniqueEmail();
    const signUpPassword = newPassword();
    expectOk(await newClient(server).auth.signUpWithEmail(email, signUpPassword, "Ada"));

    expectOk(await newClient(server).auth.sendMagicLinkEmail(email));

    const mail = await waitForMail(server, mailWithLink(email, "magic"));
    const accessToken = expectAppRedirect(await follow(linkFrom(mail, "magic")), "magic-link");
    const client = newClient(server);
    const grant = await client.auth.getAuthGrant(accessToken);
    expectOk(grant);
    assert.equal(grant.user.emailVerified, true);
    await expectSignedIn(client, grant.user._id);
    const withOldPassword = await newClient(server).auth.signInWithEmail(email, signUpPassword);
    expectError(withOldPassword, "invalid_credentials", 400);
  });
});

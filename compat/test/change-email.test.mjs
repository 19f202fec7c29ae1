// Changing the email address (email verification on: the change waits for the new address's link).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  QUICK,
  expectAppRedirect,
  expectError,
  expectOk,
  expectSignedIn,
  expectUserShape,
  follow,
  linkFrom,
  mailWithLink,
  newClient,
  signUpVerified,
  uniqueEmail,
  waitForMail,
} from "../support/helpers.mjs";

describe("change email", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  test("the change is confirmed by a link mailed to the new address", QUICK, async () => {
    const { client, email, password, user } = await signUpVerified(server);
    const newEmail = uniqueEmail("lovelace");

    const result = await client.auth.changeEmail(password, newEmail);

    expectOk(result);
    expectUserShape(result.user);
    assert.equal(result.user._id, user._id);
    assert.equal(result.user.email, email, "unchanged until the link is clicked");
    const meBefore = await expectSignedIn(client, user._id);
    assert.equal(meBefore.email, email);

    const mail = await waitForMail(server, mailWithLink(newEmail, "change"));
    const target = await follow(linkFrom(mail, "change"));
    expectAppRedirect(target, "change-email", { withToken: false });

    const meAfter = await expectSignedIn(client, user._id);
    assert.equal(meAfter.email, newEmail);
    assert.equal(meAfter.emailVerified, true);
    const withNewEmail = newClient(server);
    expectOk(await withNewEmail.auth.signInWithEmail(newEmail, password), "sign-in with the new email");
    await expectSignedIn(withNewEmail, user._id);
    expectError(await newClient(server).auth.signInWithEmail(email, password), "invalid_credentials", 400);
  });

  test("a wrong password answers invalid_credentials and keeps the session", QUICK, async () => {
    const { client, user } = await signUpVerified(server);

    const result = await client.auth.changeEmail("not the password at all", uniqueEmail());

    expectError(result, "invalid_credentials", 400);
    await expectSignedIn(client, user._id);
  });

  test("an address in use answers email_not_unique", QUICK, async () => {
    const { client, password } = await signUpVerified(server);
    const other = await signUpVerified(server);

    const result = await client.auth.changeEmail(password, other.email);

    expectError(result, "email_not_unique", 400);
  });

  test("an invalid address answers validation_error", QUICK, async () => {
    const { client, password } = await signUpVerified(server);

    const result = await client.auth.changeEmail(password, "not-an-email");

    const item = expectError(result, "validation_error", 400);
    assert.ok(["newEmail", "email"].includes(item.details?.field), `details.field names the email: ${JSON.stringify(item)}`);
  });
});

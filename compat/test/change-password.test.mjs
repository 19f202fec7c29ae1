// Changing the password while signed in (email verification on).

import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  QUICK,
  expectAppRedirectError,
  expectError,
  expectOk,
  expectSignedIn,
  expectSignedOut,
  follow,
  linkFrom,
  mailWithLink,
  newClient,
  newPassword,
  signUpVerified,
  signedInClient,
  waitForMail,
} from "../support/helpers.mjs";

describe("change password", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  test("a wrong current password answers invalid_credentials and keeps the session", QUICK, async () => {
    const { client, user } = await signUpVerified(server);

    const result = await client.auth.changePassword(newPassword(), "not the password at all");

    expectError(result, "invalid_credentials", 400);
    await expectSignedIn(client, user._id);
  });

  test("a weak new password answers validation_error", QUICK, async () => {
    const { client, password } = await signUpVerified(server);

    const result = await client.auth.changePassword("abc", password);

    expectError(result, "validation_error", 400);
  });

  test("the right current password changes it, keeps this session and ends the others", QUICK, async () => {
    const { client, email, password, user } = await signUpVerified(server);
    const otherDevice = await signedInClient(server, email, password);
    const changed = newPassword();

    const result = await client.auth.changePassword(changed, password);

    expectOk(result);
    await expectSignedIn(client, user._id);
    await expectSignedOut(otherDevice);
    expectOk(await newClient(server).auth.signInWithEmail(email, changed), "sign-in with the new password");
    expectError(await newClient(server).auth.signInWithEmail(email, password), "invalid_credentials", 400);
  });

  test("a password change voids an outstanding reset link", QUICK, async () => {
    const { client, email, password } = await signUpVerified(server);
    expectOk(await newClient(server).auth.sendResetPwdEmail(email));
    const link = linkFrom(await waitForMail(server, mailWithLink(email, "reset")), "reset");

    expectOk(await client.auth.changePassword(newPassword(), password));

    expectAppRedirectError(await follow(link), "reset-pwd");
  });
});

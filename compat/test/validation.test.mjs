// Input checks on sign-up: every problem is a validation_error entry naming its field.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import { QUICK, expectError, expectOk, newClient, newPassword, uniqueEmail } from "../support/helpers.mjs";

describe("sign-up input validation", () => {
  let server;
  before(async () => {
    server = await startServer({ env: { BASALT_AUTH__EMAIL_VERIFICATION: "false" } });
  });
  after(() => server?.close());

  const signUp = (email, password) => newClient(server).auth.signUpWithEmail(email, password, "Ada");

  test("an invalid email is a validation_error on the email field", QUICK, async () => {
    const result = await signUp("not-an-email", newPassword());

    const item = expectError(result, "validation_error", 400);
    assert.equal(item.details?.field, "email");
  });

  test("a 3-character password is a validation_error on the password field", QUICK, async () => {
    const result = await signUp(uniqueEmail(), "abc");

    const item = expectError(result, "validation_error", 400);
    assert.equal(item.details?.field, "password");
  });

  test("a bad email and a short password together give two error items", QUICK, async () => {
    const result = await signUp("not-an-email", "abc");

    expectError(result, "validation_error", 400);
    assert.equal(result.errors.items.length, 2);
    assert.deepEqual(result.errors.items.map((item) => item.code), ["validation_error", "validation_error"]);
    assert.deepEqual(result.errors.items.map((item) => item.details?.field).sort(), ["email", "password"]);
  });

  test("a common password such as password123 is refused", QUICK, async () => {
    const result = await signUp(uniqueEmail(), "password123");

    const item = expectError(result, "validation_error", 400);
    assert.equal(item.details?.field, "password");
  });

  test("a password equal to the email address is refused", QUICK, async () => {
    const email = uniqueEmail();
    const result = await signUp(email, email);

    const item = expectError(result, "validation_error", 400);
    assert.equal(item.details?.field, "password");
  });

  test("a password over 128 characters is refused", QUICK, async () => {
    const result = await signUp(uniqueEmail(), "long password ".repeat(10));

    const item = expectError(result, "validation_error", 400);
    assert.equal(item.details?.field, "password");
  });

  test("a refused sign-up creates no account", QUICK, async () => {
    const email = uniqueEmail();
    expectError(await signUp(email, "abc"), "validation_error");

    expectOk(await signUp(email, newPassword()), "the address is still free");
  });
});

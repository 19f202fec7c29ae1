// Sign-up with email, with verification on (the default) and off.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  QUICK,
  TOKEN_RE,
  expectAppRedirect,
  expectAppRedirectError,
  expectError,
  expectOk,
  expectSessionShape,
  expectSignedIn,
  expectUserShape,
  follow,
  linkFrom,
  mailTo,
  mailWithLink,
  newClient,
  newPassword,
  uniqueEmail,
  waitForMail,
  waitForMails,
} from "../support/helpers.mjs";

describe("sign-up with email verification on", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  test("sign-up answers the new user and no session", QUICK, async () => {
    const client = newClient(server);
    const email = uniqueEmail();
    const startedAt = Date.now();

    const result = await client.auth.signUpWithEmail(email, newPassword(), "Ada");

    expectOk(result);
    assert.equal(result.session, null);
    const { user } = result;
    expectUserShape(user);
    assert.equal(user.email, email);
    assert.equal(user.emailVerified, false);
    assert.equal(user.name, "Ada");
    assert.equal(user.lastLoginAt, user.signUpAt, "lastLoginAt equals signUpAt right after sign-up");
    assert.ok(Math.abs(Date.parse(user.signUpAt) - startedAt) < 60_000, "signUpAt is about now");
    assert.equal(client.auth.getSession(), null, "the client is not signed in");
  });

  test("an object as third argument is stored as user fields, surname included", QUICK, async () => {
    const client = newClient(server);
    const result = await client.auth.signUpWithEmail(uniqueEmail(), newPassword(), { name: "Ada", surname: "L" });

    expectOk(result);
    assert.equal(result.user.name, "Ada");
    assert.equal(result.user.surname, "L");
  });

  test("sign-up data cannot mark the email verified, set the _id or change the provider", QUICK, async () => {
    const client = newClient(server);
    const result = await client.auth.signUpWithEmail(uniqueEmail(), newPassword(), {
      name: "Mallory",
      emailVerified: true,
      provider: "google",
      _id: "000000000000000000000000",
    });

    if (result.errors) {
      expectError(result, "validation_error", 400); // refusing the protected fields is fine too
      return;
    }
    assert.equal(result.session, null, "still needs the confirmation mail");
    expectUserShape(result.user);
    assert.equal(result.user.emailVerified, false);
    assert.notEqual(result.user._id, "000000000000000000000000");
  });

  test("the confirmation link verifies the address and its grant signs the user in", QUICK, async () => {
    const client = newClient(server);
    const email = uniqueEmail();
    const { user } = await client.auth.signUpWithEmail(email, newPassword(), "Ada");

    const mail = await waitForMail(server, mailWithLink(email, "confirm"));
    assert.ok(typeof mail.subject === "string" && mail.subject.length > 0, "mail has a subject");
    const link = linkFrom(mail, "confirm");
    assert.ok(link.startsWith(`${server.url}/_auth/email/confirm?token=`), `link points at the server: ${link}`);

    const target = await follow(link);
    const accessToken = expectAppRedirect(target, "email-confirm");

    const grant = await client.auth.getAuthGrant(accessToken);
    expectOk(grant);
    expectUserShape(grant.user);
    assert.equal(grant.user._id, user._id);
    assert.equal(grant.user.emailVerified, true);
    expectSessionShape(grant.session, user._id);
    assert.match(grant.session.token, TOKEN_RE);
    assert.equal(client.auth.getSession().token, grant.session.token, "the client stored the session");

    const me = await expectSignedIn(client, user._id);
    expectUserShape(me);
    assert.equal(me.emailVerified, true);
    assert.equal(me.email, email);
  });

  test("a grant token works once; the second use is invalid_access_token and keeps the caller signed in", QUICK, async () => {
    const client = newClient(server);
    const email = uniqueEmail();
    await client.auth.signUpWithEmail(email, newPassword(), "Ada");
    const mail = await waitForMail(server, mailWithLink(email, "confirm"));
    const accessToken = expectAppRedirect(await follow(linkFrom(mail, "confirm")), "email-confirm");
    expectOk(await client.auth.getAuthGrant(accessToken));

    const again = await client.auth.getAuthGrant(accessToken);

    expectError(again, "invalid_access_token", 400);
    await expectSignedIn(client);
    const stranger = await newClient(server).auth.getAuthGrant(accessToken);
    expectError(stranger, "invalid_access_token", 400);
  });

  test("a mail scanner opening the link first does not spend it for the person", QUICK, async () => {
    const email = uniqueEmail();
    await newClient(server).auth.signUpWithEmail(email, newPassword(), "Ada");
    const link = linkFrom(await waitForMail(server, mailWithLink(email, "confirm")), "confirm");

    const scannerToken = expectAppRedirect(await follow(link), "email-confirm");
    const personToken = expectAppRedirect(await follow(link), "email-confirm");

    assert.notEqual(personToken, scannerToken, "every click mints a fresh grant");
    const person = newClient(server);
    const grant = await person.auth.getAuthGrant(personToken);
    expectOk(grant);
    assert.equal(grant.user.email, email);
    assert.equal(grant.user.emailVerified, true);
    await expectSignedIn(person, grant.user._id);
  });

  test("a bogus confirm link redirects to the app with status 400 and an error", QUICK, async () => {
    const target = await follow(`${server.url}/_auth/email/confirm?token=${"x".repeat(43)}`);
    expectAppRedirectError(target, "email-confirm");
  });

  test("signing up with a taken address answers like a new sign-up and mails the owner", QUICK, async () => {
    const email = uniqueEmail();
    expectOk(await newClient(server).auth.signUpWithEmail(email, newPassword(), "Ada"));
    await waitForMail(server, mailTo(email));

    const again = await newClient(server).auth.signUpWithEmail(email, newPassword(), "Eve");

    expectOk(again);
    assert.equal(again.session, null);
    assert.equal(again.user.email, email);
    await waitForMails(server, mailTo(email), { count: 2 });
  });
});

describe("sign-up with email verification off", () => {
  let server;
  before(async () => {
    server = await startServer({ env: { BASALT_AUTH__EMAIL_VERIFICATION: "false" } });
  });
  after(() => server?.close());

  test("sign-up returns a session at once and the client is signed in", QUICK, async () => {
    const client = newClient(server);
    const email = uniqueEmail();
    const password = newPassword();

    const result = await client.auth.signUpWithEmail(email, password, "Ada");

    expectOk(result);
    expectUserShape(result.user);
    assert.equal(result.user.email, email);
    expectSessionShape(result.session, result.user._id);
    assert.match(result.session.token, TOKEN_RE);
    assert.equal(client.auth.getSession().token, result.session.token);
    await expectSignedIn(client, result.user._id);

    const later = newClient(server);
    expectOk(await later.auth.signInWithEmail(email, password), "sign-in without confirming the email");
  });

  test("a second sign-up with the same address answers email_not_unique, whatever its case", QUICK, async () => {
    const email = uniqueEmail();
    expectOk(await newClient(server).auth.signUpWithEmail(email, newPassword(), "Ada"));

    const same = await newClient(server).auth.signUpWithEmail(email, newPassword(), "Eve");
    expectError(same, "email_not_unique", 400);

    const shouted = await newClient(server).auth.signUpWithEmail(email.toUpperCase(), newPassword(), "Eve");
    expectError(shouted, "email_not_unique", 400);
  });
});

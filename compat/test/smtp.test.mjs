// Mail over real SMTP (BASALT_MAIL__TRANSPORT=smtp) into a local sink.

import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { freePort, startServer } from "../support/server.mjs";
import { startSmtpSink } from "../support/smtp-sink.mjs";
import {
  QUICK,
  SLOW,
  expectAppRedirect,
  expectOk,
  expectSignedIn,
  follow,
  linkFrom,
  newClient,
  newPassword,
  uniqueEmail,
} from "../support/helpers.mjs";

function smtpEnv(port) {
  return {
    BASALT_MAIL__TRANSPORT: "smtp",
    BASALT_MAIL__SMTP__HOST: "127.0.0.1",
    BASALT_MAIL__SMTP__PORT: String(port),
    BASALT_MAIL__SMTP__TLS: "none",
    BASALT_MAIL__FROM: "Basalt <no-reply@example.com>",
  };
}

/** A port where connections are accepted and dropped at once; counts the attempts. */
async function droppingListener(port) {
  let attempts = 0;
  const listener = net.createServer((socket) => {
    attempts += 1;
    socket.destroy();
  });
  await new Promise((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(port, "127.0.0.1", resolve);
  });
  return {
    attempts: () => attempts,
    close: () => new Promise((resolve) => listener.close(() => resolve())),
  };
}

describe("SMTP delivery", () => {
  let sink;
  let server;
  before(async () => {
    sink = await startSmtpSink();
    server = await startServer({ env: smtpEnv(sink.port) });
  });
  after(async () => {
    await server?.close();
    await sink?.close();
  });

  test("the sign-up mail arrives over SMTP and its confirm link signs the user in", QUICK, async () => {
    const email = uniqueEmail();
    const client = newClient(server);
    expectOk(await client.auth.signUpWithEmail(email, newPassword(), "Ada"));

    const { envelope, mail } = await sink.waitForMessageTo(email);

    assert.deepEqual(envelope.to, [email]);
    assert.equal(mail.from?.value?.[0]?.address, "no-reply@example.com");
    assert.equal(mail.from?.value?.[0]?.name, "Basalt");
    assert.ok(mail.to?.text?.includes(email), `To header names the address: ${mail.to?.text}`);
    assert.ok(mail.subject, "mail has a subject");
    const link = linkFrom({ text: mail.text }, "confirm");
    assert.ok(link.startsWith(`${server.url}/`), `link points at the server: ${link}`);
    const accessToken = expectAppRedirect(await follow(link), "email-confirm");
    const grant = await client.auth.getAuthGrant(accessToken);
    expectOk(grant);
    assert.equal(grant.user.emailVerified, true);
    await expectSignedIn(client, grant.user._id);
  });

  test("the dev mailbox is not served in SMTP mode", QUICK, async () => {
    const response = await fetch(`${server.url}/_dev/mail`);
    await response.arrayBuffer();

    assert.equal(response.status, 404);
  });
});

describe("SMTP server down at start-up", () => {
  let server;
  let sink;
  let dropping;
  after(async () => {
    await server?.close();
    await dropping?.close();
    await sink?.close();
  });

  test("Basalt starts without SMTP and delivers the mail once SMTP is up", SLOW, async () => {
    const smtpPort = await freePort(); // nothing listens there yet
    server = await startServer({ env: smtpEnv(smtpPort) });
    const email = uniqueEmail();
    const client = newClient(server);

    expectOk(await client.auth.signUpWithEmail(email, newPassword(), "Ada"), "sign-up while SMTP is down");

    // SMTP comes back as a server that drops connections; wait until Basalt retried there.
    dropping = await droppingListener(smtpPort);
    const retryDeadline = Date.now() + 30_000;
    while (dropping.attempts() === 0) {
      assert.ok(Date.now() < retryDeadline, "Basalt retried the delivery within 30 s");
      await delay(50);
    }
    await dropping.close();
    dropping = null;

    sink = await startSmtpSink({ port: smtpPort });
    const { mail } = await sink.waitForMessageTo(email, 40_000);
    const accessToken = expectAppRedirect(await follow(linkFrom({ text: mail.text }, "confirm")), "email-confirm");
    expectOk(await client.auth.getAuthGrant(accessToken));
  });
});

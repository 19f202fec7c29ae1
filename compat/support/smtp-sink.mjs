// A local SMTP server that accepts every message and keeps it, parsed, in memory.

import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

/**
 * Listens on 127.0.0.1:`port` (0 = any free port), plain text, no AUTH required.
 * Each received message is `{ envelope: { from, to: [addresses] }, mail: ParsedMail }`.
 */
export async function startSmtpSink({ port = 0 } = {}) {
  const messages = [];
  const smtp = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    closeTimeout: 500,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          messages.push({
            envelope: {
              from: session.envelope.mailFrom?.address ?? null,
              to: session.envelope.rcptTo.map((recipient) => recipient.address.toLowerCase()),
            },
            mail,
          });
          callback();
        },
        (error) => callback(error),
      );
    },
  });

  await new Promise((resolve, reject) => {
    smtp.server.once("error", reject);
    smtp.listen(port, "127.0.0.1", () => {
      smtp.server.off("error", reject);
      resolve();
    });
  });

  return {
    port: smtp.server.address().port,
    messages,
    /** Waits for a message whose envelope goes to `email`; returns it. */
    async waitForMessageTo(email, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.find((message) => message.envelope.to.includes(email.toLowerCase()));
        if (found) return found;
        if (Date.now() > deadline) {
          assert.fail(`no SMTP message to ${email} within ${timeoutMs} ms; got ${JSON.stringify(messages.map((m) => m.envelope))}`);
        }
        await delay(50);
      }
    },
    close: () => new Promise((resolve) => smtp.close(() => resolve())),
  };
}

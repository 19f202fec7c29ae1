// Process lifecycle: answered writes survive kill -9; SIGTERM shuts down cleanly.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import {
  SLOW,
  clientWithToken,
  expectOk,
  expectTokenRefused,
  newClient,
  signUpWithSession,
} from "../support/helpers.mjs";

const NO_VERIFICATION = { BASALT_AUTH__EMAIL_VERIFICATION: "false" };

describe("durability", () => {
  const servers = [];
  after(async () => {
    // Newest first: later servers reuse the data dir the first one created and removes.
    for (const server of servers.reverse()) await server.close();
  });

  async function start(options) {
    const server = await startServer(options);
    servers.push(server);
    return server;
  }

  test("every answered sign-up and sign-out survives kill -9", SLOW, async () => {
    const first = await start({ env: NO_VERIFICATION });
    const accounts = [];
    for (let i = 0; i < 20; i += 1) accounts.push(await signUpWithSession(first, { name: `User ${i}` }));
    const signedOut = accounts.slice(0, 5);
    const stillIn = accounts.slice(5);
    for (const account of signedOut) expectOk(await account.client.auth.signOut(), `sign-out of ${account.email}`);

    await first.kill9();
    const second = await start({ env: NO_VERIFICATION, dataDir: first.dataDir });

    for (const account of signedOut) await expectTokenRefused(second, account.session.token);
    for (const account of stillIn) {
      const me = await clientWithToken(second, account.session.token).auth.getUserFromDB();
      expectOk(me, `session of ${account.email} after restart`);
      assert.equal(me.user._id, account.user._id);
    }
    for (const account of accounts) {
      const signIn = await newClient(second).auth.signInWithEmail(account.email, account.password);
      expectOk(signIn, `sign-in of ${account.email} after restart`);
      assert.equal(signIn.user._id, account.user._id);
    }
  });

  test("SIGTERM exits 0", SLOW, async () => {
    const server = await start({ env: NO_VERIFICATION });
    await signUpWithSession(server);

    const { code, signal } = await server.stop();

    assert.equal(signal, null, "exited by itself, not by the signal");
    assert.equal(code, 0);
  });

  test("data written before SIGTERM is there after a restart", SLOW, async () => {
    const server = await start({ env: NO_VERIFICATION });
    const account = await signUpWithSession(server);
    await server.stop();

    const restarted = await start({ env: NO_VERIFICATION, dataDir: server.dataDir });

    const me = await clientWithToken(restarted, account.session.token).auth.getUserFromDB();
    expectOk(me, "session after a clean restart");
    assert.equal(me.user._id, account.user._id);
    expectOk(await newClient(restarted).auth.signInWithEmail(account.email, account.password));
  });
});

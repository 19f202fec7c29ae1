// HTTP-level behaviour: client keys, unknown routes, CORS.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import { QUICK, expectError, newClient } from "../support/helpers.mjs";

const APP_ORIGIN = "http://localhost:3000";

/** Fetches and parses a JSON error envelope; returns { response, body }. */
async function fetchJson(url, init = {}) {
  const response = await fetch(url, init);
  const text = await response.text();
  assert.match(response.headers.get("content-type") ?? "", /application\/json/, `JSON answer expected: ${text}`);
  return { response, body: JSON.parse(text) };
}

function errorCode(body) {
  assert.ok(Array.isArray(body.errors) && body.errors.length >= 1, `error envelope expected: ${JSON.stringify(body)}`);
  return body.errors[0].code;
}

describe("HTTP surface", () => {
  let server;
  let userUrl;
  before(async () => {
    server = await startServer();
    userUrl = `${server.url}/_api/rest/v1/auth/user`;
  });
  after(() => server?.close());

  test("a request without X-Client-Key answers 401 missing_client_key", QUICK, async () => {
    const { response, body } = await fetchJson(userUrl);

    assert.equal(response.status, 401);
    assert.equal(errorCode(body), "missing_client_key");
  });

  test("a request with an unknown X-Client-Key answers 401 invalid_client_key", QUICK, async () => {
    const { response, body } = await fetchJson(userUrl, { headers: { "X-Client-Key": "not-a-key" } });

    assert.equal(response.status, 401);
    assert.equal(errorCode(body), "invalid_client_key");
  });

  test("the client with a wrong key sees invalid_client_key", QUICK, async () => {
    const client = newClient(server, { key: "not-a-key" });

    const result = await client.auth.signInWithEmail("ada+x@example.com", "whatever password");

    expectError(result, "invalid_client_key", 401);
  });

  test("an unknown route answers 404 in the JSON error envelope", QUICK, async () => {
    for (const path of ["/_api/rest/v1/no-such-thing", "/definitely/not/here"]) {
      const { response, body } = await fetchJson(`${server.url}${path}`, { headers: { "X-Client-Key": server.key } });

      assert.equal(response.status, 404, path);
      assert.equal(errorCode(body), "not_found", path);
    }
  });

  test("a CORS pre-flight succeeds without keys and allows the client's headers with credentials", QUICK, async () => {
    const response = await fetch(`${server.url}/_api/rest/v1/auth/signin-email`, {
      method: "OPTIONS",
      headers: {
        Origin: APP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,session,x-client,x-client-key",
      },
    });
    await response.arrayBuffer();

    assert.ok(response.status >= 200 && response.status < 300, `pre-flight status ${response.status}`);
    assert.equal(response.headers.get("access-control-allow-origin"), APP_ORIGIN);
    assert.equal(response.headers.get("access-control-allow-credentials"), "true");
    const allowedHeaders = (response.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const header of ["content-type", "session", "x-client", "x-client-key"]) {
      assert.ok(allowedHeaders.includes(header), `allows ${header}: ${allowedHeaders}`);
    }
    assert.match(response.headers.get("access-control-allow-methods") ?? "", /POST/i);
  });

  test("an error response carries the CORS headers too", QUICK, async () => {
    const { response, body } = await fetchJson(userUrl, { headers: { Origin: APP_ORIGIN } });

    assert.equal(response.status, 401);
    assert.equal(errorCode(body), "missing_client_key");
    assert.equal(response.headers.get("access-control-allow-origin"), APP_ORIGIN);
    assert.equal(response.headers.get("access-control-allow-credentials"), "true");
    assert.match(response.headers.get("vary") ?? "", /origin/i);
  });

  test("a successful response echoes the Origin", QUICK, async () => {
    const response = await fetch(`${server.url}/_api/rest/v1/auth/send-magic?email=nobody+cors@example.com`, {
      method: "POST",
      headers: { Origin: APP_ORIGIN, "X-Client-Key": server.key, "X-Client": "altogic-js" },
    });
    await response.arrayBuffer();

    assert.equal(response.status, 200);
    assert.equal(response.headers.get("access-control-allow-origin"), APP_ORIGIN);
    assert.equal(response.headers.get("access-control-allow-credentials"), "true");
  });
});

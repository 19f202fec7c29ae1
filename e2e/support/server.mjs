// Starts the release binary as a process serving the production build of the example app: a
// free port on 127.0.0.1, a fresh data dir, no `auth.redirect_url` (so emailed links come back
// to the app's own /auth-redirect). `stop()` ends it and removes the data dir; so does the exit
// of the test process, whatever failed.

import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const REPO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

const HEALTH_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const MAX_LOG_CHARS = 64 * 1024;

const live = new Set();
// Exit handlers do not run on a signal by default: make Ctrl-C and kill go through them.
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => process.exit(1));
process.on("exit", () => {
  for (const { proc, dataDir } of live) {
    proc.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/** A TCP port on 127.0.0.1 that was free a moment ago. */
function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

function required(path, hint) {
  if (!existsSync(path)) throw new Error(`${path} does not exist: ${hint}`);
  return path;
}

/** `basalt serve --static-dir <app build>`; resolves once GET /health answers 200. */
export async function startBasalt() {
  const bin = required(
    resolve(REPO_DIR, process.env.BASALT_BIN ?? "target/release/basalt"),
    "build it with `cargo build --release` or set BASALT_BIN",
  );
  const staticDir = resolve(REPO_DIR, process.env.E2E_APP_DIST ?? "examples/react-app/dist");
  required(join(staticDir, "index.html"), "build the app with `npm ci && npm run build` in examples/react-app");
  const dataDir = await mkdtemp(join(tmpdir(), "basalt-e2e-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Only what the test sets: none of the developer's BASALT_* settings leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("BASALT_")));
  const proc = spawn(bin, ["serve", "--static-dir", staticDir], {
    env: {
      ...env,
      BASALT_LISTEN: `127.0.0.1:${port}`,
      BASALT_PUBLIC_URL: url,
      BASALT_DATA_DIR: dataDir,
      // One address receives several mails within a minute; the per-recipient limit would hold them.
      BASALT_RATE_LIMITS__ENABLED: "false",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const server = { proc, dataDir };
  live.add(server);
  let output = "";
  const capture = (chunk) => {
    output = (output + chunk.toString("utf8")).slice(-MAX_LOG_CHARS);
  };
  proc.stdout.on("data", capture);
  proc.stderr.on("data", capture);
  let exit = null;
  const exited = new Promise((done) => proc.once("exit", (code, signal) => done((exit = { code, signal }))));

  const stop = async () => {
    if (!live.has(server)) return;
    live.delete(server);
    if (!exit) {
      proc.kill("SIGTERM");
      const stopped = await Promise.race([exited, delay(STOP_TIMEOUT_MS, null, { ref: false })]);
      if (!stopped) {
        proc.kill("SIGKILL");
        await exited;
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  for (;;) {
    if (exit) throw new Error(`basalt exited before it was healthy (${JSON.stringify(exit)}):\n${output}`);
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`basalt was not healthy within ${HEALTH_TIMEOUT_MS} ms:\n${output}`);
    }
    await delay(50);
  }

  return {
    url,
    stop,
    logs: () => output,
    /** Every mail of the dev outbox, newest first. */
    async mail() {
      const response = await fetch(`${url}/_dev/mail`);
      if (!response.ok) throw new Error(`GET /_dev/mail answered ${response.status}`);
      return response.json();
    },
  };
}

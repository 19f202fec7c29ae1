// Starts and stops Basalt server processes for the compatibility tests.
//
//   const server = await startServer({ env: { BASALT_AUTH__EMAIL_VERIFICATION: "false" } });
//   after(() => server.close());
//
// `config` (TOML text, e.g. `[[database.models]]` blocks) is written to `basalt.toml` in the data
// dir and passed as `basalt --config <file> serve`; BASALT_* variables still override it.
//
// The binary comes from BASALT_BIN (default: target/release/basalt in the repository).

import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterEach } from "node:test";
import { fileURLToPath } from "node:url";

export const CLIENT_KEY = "compat-test-key";
export const APP_REDIRECT_URL = "http://localhost:3000/auth-redirect";

const COMPAT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const REPO_DIR = resolve(COMPAT_DIR, "..");
const HEALTH_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 35_000; // SIGTERM may drain requests in flight for up to 30 s
const MAX_LOG_BYTES = 256 * 1024;
const SHOW_LOGS = process.env.BASALT_COMPAT_LOGS === "1"; // stream every server's output live
const FAILURE_LOG_CHARS = 8_000;

// Every child and temp dir still alive, so a crashing test file never leaves them behind.
const liveProcs = new Set();
const ownedDirs = new Set();
process.on("exit", () => {
  for (const proc of liveProcs) proc.kill("SIGKILL");
  for (const dir of ownedDirs) rmSync(dir, { recursive: true, force: true });
});

// When a test fails, show the tail of the output of every server that is not closed yet.
const openServers = new Set();
afterEach((t) => {
  if (t.passed || SHOW_LOGS) return;
  for (const server of openServers) {
    process.stderr.write(`\n[compat] output of basalt on port ${server.port} (last ${FAILURE_LOG_CHARS} chars):\n`);
    process.stderr.write(`${server.logs().slice(-FAILURE_LOG_CHARS)}\n`);
  }
});

/** The Basalt executable: BASALT_BIN made absolute, trying the compat dir, the cwd and the repo root. */
export function basaltBin() {
  const bin = process.env.BASALT_BIN || "target/release/basalt";
  if (isAbsolute(bin)) return bin;
  const candidates = [resolve(COMPAT_DIR, bin), resolve(process.cwd(), bin), resolve(REPO_DIR, bin)];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found) {
    throw new Error(`Basalt binary not found: BASALT_BIN=${bin}; tried ${candidates.join(", ")}`);
  }
  return found;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
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

/** Environment inherited by the child, minus any BASALT_* settings of the developer's shell. */
function inheritedEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("BASALT_")));
}

/**
 * Spawns `basalt serve` on a free port with a fresh data dir (or `dataDir`, for restarts) and
 * waits until GET /health answers 200. `config`: TOML text written to `<dataDir>/basalt.toml` and
 * passed with the global `--config` flag.
 */
export async function startServer({ env = {}, dataDir, config } = {}) {
  const bin = basaltBin();
  const ownsDataDir = !dataDir;
  if (ownsDataDir) {
    dataDir = await mkdtemp(join(tmpdir(), "basalt-compat-"));
    ownedDirs.add(dataDir);
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;

  const args = ["serve"];
  if (config !== undefined) {
    const configFile = join(dataDir, "basalt.toml");
    await writeFile(configFile, config);
    args.unshift("--config", configFile);
  }

  const proc = spawn(bin, args, {
    env: {
      ...inheritedEnv(),
      BASALT_LISTEN: `127.0.0.1:${port}`,
      BASALT_PUBLIC_URL: url,
      BASALT_DATA_DIR: dataDir,
      BASALT_CLIENT_KEYS: CLIENT_KEY,
      BASALT_AUTH__REDIRECT_URL: APP_REDIRECT_URL,
      BASALT_RATE_LIMITS__ENABLED: "false",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  liveProcs.add(proc);

  let output = "";
  const capture = (chunk) => {
    if (SHOW_LOGS) process.stderr.write(chunk);
    output += chunk.toString("utf8");
    if (output.length > MAX_LOG_BYTES) output = output.slice(-MAX_LOG_BYTES);
  };
  proc.stdout.on("data", capture);
  proc.stderr.on("data", capture);

  let exitStatus = null;
  let stopping = false;
  const exited = new Promise((resolveExit) => {
    const done = (status) => {
      if (exitStatus) return;
      exitStatus = status;
      liveProcs.delete(proc);
      if (!stopping) {
        process.stderr.write(
          `\n[compat] basalt on port ${port} exited on its own (${JSON.stringify(status)}); its output:\n${output}\n`,
        );
      }
      resolveExit(status);
    };
    proc.once("exit", (code, signal) => done({ code, signal }));
    proc.once("error", (error) => done({ code: null, signal: null, error: error.message }));
  });

  const server = {
    url,
    key: CLIENT_KEY,
    dataDir,
    port,
    proc,
    /** Everything the process printed so far (tail). */
    logs: () => output,
    /** The dev mailbox: every mail sent, newest first. */
    async mail() {
      const response = await fetch(`${url}/_dev/mail`);
      if (response.status !== 200) {
        throw new Error(`GET /_dev/mail answered ${response.status}: ${await response.text()}`);
      }
      return response.json();
    },
    /** SIGTERM, then wait for the exit; resolves to { code, signal }. */
    async stop() {
      return terminate("SIGTERM");
    },
    /** SIGKILL, then wait for the exit. */
    async kill9() {
      return terminate("SIGKILL");
    },
    /** Kills the process if it still runs and removes the data dir if this server created it. */
    async close() {
      openServers.delete(server);
      if (!exitStatus) await terminate("SIGKILL");
      if (ownsDataDir) {
        await rm(dataDir, { recursive: true, force: true });
        ownedDirs.delete(dataDir);
      }
    },
  };

  async function terminate(signal) {
    stopping = true;
    if (exitStatus) return exitStatus;
    proc.kill(signal);
    const timeout = delay(STOP_TIMEOUT_MS, null, { ref: false }); // must not keep the test process alive
    const status = await Promise.race([exited, timeout]);
    if (!status) {
      proc.kill("SIGKILL");
      await exited;
      throw new Error(`basalt did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}; output:\n${output}`);
    }
    return status;
  }

  try {
    await waitForHealth(url, () => exitStatus);
  } catch (error) {
    await server.close();
    throw new Error(`${error.message}\nbasalt output:\n${output}`);
  }
  openServers.add(server);
  return server;
}

async function waitForHealth(url, exitStatus) {
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let lastProblem = "no answer yet";
  while (Date.now() < deadline) {
    if (exitStatus()) throw new Error(`basalt exited before it was healthy: ${JSON.stringify(exitStatus())}`);
    try {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
      lastProblem = `GET /health answered ${response.status}`;
    } catch (error) {
      lastProblem = error.cause?.code ?? error.message;
    }
    await delay(50);
  }
  throw new Error(`basalt was not healthy within ${HEALTH_TIMEOUT_MS} ms at ${url} (${lastProblem})`);
}

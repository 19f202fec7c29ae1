// Starts and stops Basalt server processes for the compatibility tests.
//
//   const server = await startServer({ env: { BASALT_AUTH__EMAIL_VERIFICATION: "false" } });
//   after(() => server.close());
//
// `config` (TOML text, e.g. `[[database.models]]` blocks) is written to `basalt.toml` in the data
// dir and passed as `basalt --config <file> serve`; BASALT_* variables still override it.
//
// The binary comes from BASALT_BIN (default: target/release/basalt in the repository).
//
// Backends: by default each server keeps everything in its data dir (SQLite, local files). With
// BASALT_COMPAT_POSTGRES_URL (an admin database, e.g. postgres://postgres@127.0.0.1:5432/test)
// each new data dir gets a fresh database `basalt_compat_<random>` on that server, created with
// `psql` and dropped (connections ended) when the server that created it closes; with
// BASALT_COMPAT_S3 (an S3 server that checks no signatures, such as moto's) a fresh bucket
// `basalt-compat-<random>` holds its files. A restart with `dataDir` of an earlier server uses
// that server's database and bucket, so restart tests see the same data on every backend.

import { execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterEach } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const CLIENT_KEY = "compat-test-key";
export const APP_REDIRECT_URL = "http://localhost:3000/auth-redirect";

const COMPAT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const REPO_DIR = resolve(COMPAT_DIR, "..");
const HEALTH_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 35_000; // SIGTERM may drain requests in flight for up to 30 s
const MAX_LOG_BYTES = 256 * 1024;
const SHOW_LOGS = process.env.BASALT_COMPAT_LOGS === "1"; // stream every server's output live
const FAILURE_LOG_CHARS = 8_000;
const POSTGRES_URL = process.env.BASALT_COMPAT_POSTGRES_URL || "";
const S3_URL = (process.env.BASALT_COMPAT_S3 || "").replace(/\/+$/, "");

// Every child, temp dir and database still alive, so a crashing test file leaves none behind.
const liveProcs = new Set();
const ownedDirs = new Set();
const ownedDatabases = new Set();
process.on("exit", () => {
  for (const proc of liveProcs) proc.kill("SIGKILL");
  for (const dir of ownedDirs) rmSync(dir, { recursive: true, force: true });
  // "exit" handlers cannot wait: the psql CLI has a synchronous form, a client library has not.
  for (const name of ownedDatabases) spawnSync("psql", psqlArgs(dropDatabaseSql(name)), { stdio: "ignore" });
});

/** What the servers run on, for messages: "SQLite", "PostgreSQL", "PostgreSQL and S3"… */
export function backendName() {
  const database = POSTGRES_URL ? "PostgreSQL" : "SQLite";
  return S3_URL ? `${database} and S3` : database;
}

// The backend variables of each data dir this process created, reused by restarts.
const backendEnvs = new Map();

// When a test fails, show the tail of the output of every server that is not closed yet.
const openServers = new Set();
afterEach((t) => {
  if (t.passed || SHOW_LOGS) return;
  for (const server of openServers) {
    process.stderr.write(`\n[compat] output of basalt on port ${server.port} on ${backendName()} (last ${FAILURE_LOG_CHARS} chars):\n`);
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
  let database = null; // the database this server created and drops when it closes
  if (ownsDataDir) {
    dataDir = await mkdtemp(join(tmpdir(), "basalt-compat-"));
    ownedDirs.add(dataDir);
    const backendEnv = {};
    try {
      if (POSTGRES_URL) {
        database = await createDatabase();
        backendEnv.BASALT_DATABASE__URL = database.url;
      }
      if (S3_URL) Object.assign(backendEnv, storageEnv(await createBucket()));
    } catch (error) {
      if (database) await dropDatabase(database.name);
      await rm(dataDir, { recursive: true, force: true });
      ownedDirs.delete(dataDir);
      throw error;
    }
    backendEnvs.set(dataDir, backendEnv);
  } else if ((POSTGRES_URL || S3_URL) && !backendEnvs.has(dataDir)) {
    // It would start on SQLite or local files, quietly testing the wrong backend.
    throw new Error(`restart on ${dataDir}: not the data dir of a server of this process that is still open`);
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
      ...backendEnvs.get(dataDir),
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
    /**
     * Kills the process if it still runs and, if this server created them, removes the data dir
     * and drops its database. Close restarts on the same `dataDir` first.
     */
    async close() {
      openServers.delete(server);
      if (!exitStatus) await terminate("SIGKILL");
      if (ownsDataDir) {
        await rm(dataDir, { recursive: true, force: true });
        ownedDirs.delete(dataDir);
        backendEnvs.delete(dataDir);
        if (database) await dropDatabase(database.name);
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

// ---------------------------------------------------------------------------------------------
// PostgreSQL and S3

const execFileAsync = promisify(execFile);

/** `psql` on the admin database running one statement, stopping at the first error. */
function psqlArgs(sql) {
  return [POSTGRES_URL, "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-c", sql];
}

async function psql(sql) {
  try {
    await execFileAsync("psql", psqlArgs(sql), { timeout: 30_000 });
  } catch (error) {
    const why = error.code === "ENOENT" ? "psql is not installed" : (error.stderr || error.message).trim();
    throw new Error(`psql on BASALT_COMPAT_POSTGRES_URL=${POSTGRES_URL} failed: ${why}\n(${sql})`);
  }
}

/** Ends the database's connections (a killed server's may linger) and drops it. */
function dropDatabaseSql(name) {
  return `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`;
}

/** `basalt_compat_<random>` on the server of BASALT_COMPAT_POSTGRES_URL: its name and URL. */
async function createDatabase() {
  const name = `basalt_compat_${randomBytes(8).toString("hex")}`;
  await psql(`CREATE DATABASE ${name}`);
  ownedDatabases.add(name);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return { name, url: url.href };
}

async function dropDatabase(name) {
  await psql(dropDatabaseSql(name));
  ownedDatabases.delete(name);
}

/** A fresh bucket on the S3 server of BASALT_COMPAT_S3 (moto takes an unsigned CreateBucket). */
async function createBucket() {
  const name = `basalt-compat-${randomBytes(8).toString("hex")}`;
  let response;
  try {
    response = await fetch(`${S3_URL}/${name}`, { method: "PUT", signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    throw new Error(`S3 server at BASALT_COMPAT_S3=${S3_URL}: ${error.cause?.code ?? error.cause?.message ?? error.message}`);
  }
  if (!response.ok) {
    throw new Error(`creating bucket ${name} at ${S3_URL}: ${response.status} ${await response.text()}`);
  }
  await response.arrayBuffer();
  return name;
}

/** The server's storage settings for `bucket` on BASALT_COMPAT_S3 (moto takes any key pair). */
function storageEnv(bucket) {
  return {
    BASALT_STORAGE__BACKEND: "s3",
    BASALT_STORAGE__S3__BUCKET: bucket,
    BASALT_STORAGE__S3__ENDPOINT: S3_URL,
    BASALT_STORAGE__S3__REGION: "us-east-1",
    BASALT_STORAGE__S3__PATH_STYLE: "true",
    BASALT_STORAGE__S3__ALLOW_HTTP: "true",
    BASALT_STORAGE__S3__ACCESS_KEY_ID: "basalt-test",
    BASALT_STORAGE__S3__SECRET_ACCESS_KEY: "basalt-test-secret",
  };
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

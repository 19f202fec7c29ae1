#!/usr/bin/env python3
"""Start the release binary on a fresh data dir, seed users through the API, drive it with
wrk at 64 connections on loopback and print a table. Bounded in time; stops by itself.

SQLite by default; `--postgres ADMIN_URL` runs on a fresh `basalt_bench_<random>` database
created through that URL (and dropped at the end), `--nodes N` starts N Basalt processes on
it, sharing one data directory, and spreads wrk's threads (and so its connections) evenly over
them. See bench/README.md."""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

KEY = "bench-client-key"
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("X-Client-Key", KEY)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def parse_wrk(out):
    def dur(s):
        m = re.match(r"([\d.]+)(us|ms|s)", s)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = dur(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = dur(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return rps, p50, p99, errors


# Appended to a wrk script with several nodes: thread i connects to node i mod N (wrk's
# `thread.addr`), so one wrk process spreads its connections evenly over the nodes and reports
# one latency distribution over all of them. The script's own `setup`, if any, still runs.
SPREAD = """
local bench_addrs = nil
local bench_next = 0
local bench_setup = setup
setup = function(thread)
  if bench_addrs == nil then
    bench_addrs = {}
    for _, port in ipairs({PORTS}) do
      table.insert(bench_addrs, wrk.lookup("127.0.0.1", tostring(port))[1])
    end
  end
  thread.addr = bench_addrs[(bench_next % #bench_addrs) + 1]
  bench_next = bench_next + 1
  if bench_setup then bench_setup(thread) end
end
"""


def spread(tmp, script, ports):
    """The script (or none) with connections spread over every node's port."""
    text = ""
    if script:
        with open(script) as f:
            text = f.read()
    name = os.path.basename(script or "plain.lua").replace(".lua", "-nodes.lua")
    return lua(tmp, name, text + SPREAD.replace("PORTS", ", ".join(str(p) for p in ports)))


def wrk(url, seconds, connections, script=None, headers=(), threads=2, nodes=None):
    """Run wrk; with `nodes` = (tmp dir, ports) of several nodes, its threads (at least one per
    node, a multiple of their number) go to the nodes in turn."""
    if nodes and len(nodes[1]) > 1:
        tmp, ports = nodes
        threads = -(-max(threads, len(ports)) // len(ports)) * len(ports)
        script = spread(tmp, script, ports)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    cmd.append(url)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def lua(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def psql(url, sql):
    """One statement through `psql` (the PostgreSQL client), its output unaligned."""
    done = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url,
                           "-c", sql], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"psql {sql!r}: {done.stderr.strip()}")
    return done.stdout.strip()


def with_database(url, name):
    """The same server URL, naming another database."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def start_node(bin_path, config_path, env, port):
    """Spawn `basalt serve` on `port`; returns (process, ms until the ready banner)."""
    node_env = dict(env, BASALT_LISTEN=f"127.0.0.1:{port}")
    started = time.monotonic()
    proc = subprocess.Popen([bin_path, "--config", config_path, "serve"], env=node_env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Ready = the banner is printed (the listener is bound and the database migrated).
    if not proc.stdout.readline():
        raise SystemExit(f"basalt serve on port {port} exited with {proc.wait()}")
    return proc, (time.monotonic() - started) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--only", default="",
                    help="run only the rows whose name contains this text (case-insensitive; "
                         "several texts separated by commas)")
    ap.add_argument("--postgres", metavar="ADMIN_URL", default="",
                    help="run on PostgreSQL: a fresh basalt_bench_<random> database is created "
                         "through this URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) "
                         "and dropped at the end")
    ap.add_argument("--nodes", type=int, default=1,
                    help="Basalt processes on the one PostgreSQL database, sharing a data "
                         "directory; wrk spreads its connections evenly over them")
    ap.add_argument("--pool", type=int, default=0,
                    help="database.max_connections of each node (PostgreSQL; default Basalt's)")
    ap.add_argument("--rate-limits", action="store_true",
                    help="keep rate limits on, with limits too high to refuse anything, to "
                         "measure what counting costs (off by default)")
    ap.add_argument("--redis", metavar="URL", default="",
                    help="count the rate limits in this Redis (rate_limits.redis_url, under a "
                         "fresh key prefix); implies --rate-limits")
    args = ap.parse_args()
    if args.redis:
        args.rate_limits = True
    if args.nodes < 1 or (args.nodes > 1 and not args.postgres):
        ap.error("--nodes above 1 needs --postgres (nodes share one PostgreSQL database)")
    if args.pool and not args.postgres:
        ap.error("--pool needs --postgres")

    def wanted(name):
        return any(part in name.lower() for part in args.only.lower().split(","))

    if args.postgres:
        pg_version = psql(args.postgres, "SHOW server_version").split()[0]
        pg_sync = psql(args.postgres, "SHOW synchronous_commit")

    tmp = tempfile.mkdtemp(prefix="basalt-bench-")
    ports = []
    while len(ports) < args.nodes:
        candidate = free_port()
        if candidate not in ports:
            ports.append(candidate)
    port = ports[0]
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update({
        "BASALT_PUBLIC_URL": base,
        "BASALT_DATA_DIR": os.path.join(tmp, "data"),
        "BASALT_CLIENT_KEYS": KEY,
        "BASALT_RATE_LIMITS__ENABLED": "true" if args.rate_limits else "false",
        "BASALT_AUTH__EMAIL_VERIFICATION": "false",
        "BASALT_LOG": "warn",
    })
    if args.redis:
        env["BASALT_RATE_LIMITS__REDIS_URL"] = args.redis
        env["BASALT_RATE_LIMITS__REDIS_PREFIX"] = f"basalt-bench:{os.urandom(6).hex()}:"
    database = ""
    if args.postgres:
        database = f"basalt_bench_{os.urandom(6).hex()}"
        env["BASALT_DATABASE__URL"] = with_database(args.postgres, database)
        if args.pool:
            env["BASALT_DATABASE__MAX_CONNECTIONS"] = str(args.pool)

    # Hashing capacity of this machine with the configured parameters, same binary.
    hash_out = subprocess.run([args.bin, "hash-rate", "--seconds", "5"], env=env,
                              capture_output=True, text=True, check=True).stdout
    hash_rate = float(re.search(r"([\d.]+) hashes/s", hash_out).group(1))

    # A declared model for the filtered get-list: 100,000 objects, an index on the filtered
    # field that also holds the sort key, so a page reads only its 20 rows.
    config_path = os.path.join(tmp, "basalt.toml")
    with open(config_path, "w") as f:
        if args.rate_limits:
            # Every limit far above what this machine can reach: each request still counts.
            big = "{ count = 1000000000, per_secs = 1, burst = 1000000000 }"
            f.write("[rate_limits]\n" + "".join(
                f"{name} = {big}\n" for name in (
                    "auth_per_ip", "mail_per_ip", "mail_per_recipient_short",
                    "mail_per_recipient_long", "redeem_per_ip", "uploads_per_user")) + "\n")
        f.write('[[database.models]]\nname = "items"\naccess = "public_read"\n'
                'indexes = [{ fields = ["category"], sort = ["rank"] }]\n')

    procs = []
    if database:
        psql(args.postgres, f"CREATE DATABASE {database}")
    try:
        # The first node migrates the database; the others start after it, one by one.
        startups = []
        for p in ports:
            proc, ms = start_node(args.bin, config_path, env, p)
            procs.append(proc)
            startups.append(ms)
        time.sleep(1)
        idle_rss = [rss_kib(p.pid, "VmRSS") for p in procs]
        spread_over = (tmp, ports)

        users = []
        for i in range(64):
            email = f"bench{i}@example.com"
            grant = request(f"{base}/_api/rest/v1/auth/signup-email", "POST",
                            {"email": email, "password": PASSWORD, "nameOrUserData": f"User {i}"})
            users.append((email, grant["session"]["token"]))
        token = users[0][1]

        signin = lua(tmp, "signin.lua", """
local n = 0
request = function()
  n = n + 1
  local body = '{"email":"bench' .. (n % 64) .. '@example.com","password":"PASSWORD"}'
  return wrk.format("POST", "/_api/rest/v1/auth/signin-email",
    {["Content-Type"] = "application/json", ["X-Client-Key"] = "KEY"}, body)
end
""".replace("PASSWORD", PASSWORD).replace("KEY", KEY))
        signup = lua(tmp, "signup.lua", """
local n = 0

setup = function(thread) thread:set("id", tostring(math.random(1, 1000000000))) end
request = function()
  n = n + 1
  local body = '{"email":"new-' .. (id or "0") .. '-' .. n .. '@example.com","password":"PASSWORD"}'
  return wrk.format("POST", "/_api/rest/v1/auth/signup-email",
    {["Content-Type"] = "application/json", ["X-Client-Key"] = "KEY"}, body)
end
""".replace("PASSWORD", PASSWORD).replace("KEY", KEY))

        user_id = request(f"{base}/_api/rest/v1/auth/user", headers={"Session": token})["_id"]
        update = lua(tmp, "update.lua", """
local n = 0
request = function()
  n = n + 1
  local body = '{"model":"users","id":"USER","values":{"name":"Name ' .. n .. '"},"options":{"cache":"nocache","returnTop":false}}'
  return wrk.format("POST", "/_api/rest/v1/db/object/update",
    {["Content-Type"] = "application/json", ["X-Client-Key"] = "KEY", ["Session"] = "TOKEN"}, body)
end
""".replace("USER", user_id).replace("KEY", KEY).replace("TOKEN", token))
        png = b"\x89PNG\r\n\x1a\n" + bytes(100 * 1024 - 8)
        boundary = "basaltbenchboundary"
        multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                     f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
        body_path = os.path.join(tmp, "upload.bin")
        with open(body_path, "wb") as f:
            f.write(multipart)
        upload = lua(tmp, "upload.lua", """
local f = io.open("BODY", "rb")
local body = f:read("*a")
f:close()
local n = 0

setup = function(thread) thread:set("id", tostring(math.random(1, 1000000000))) end
request = function()
  n = n + 1
  return wrk.format("POST", "/_api/rest/v1/storage/bucket/upload-formdata?bucket=root&fileName=avatar-" .. (id or "0") .. "-" .. n .. ".png",
    {["Content-Type"] = "multipart/form-data; boundary=BOUNDARY", ["X-Client-Key"] = "KEY", ["Session"] = "TOKEN"}, body)
end
""".replace("BODY", body_path).replace("BOUNDARY", boundary).replace("KEY", KEY).replace("TOKEN", users[2][1]))
        sample = urllib.request.Request(
            f"{base}/_api/rest/v1/storage/bucket/upload-formdata?bucket=root&fileName=public.png",
            data=multipart, method="POST")
        sample.add_header("X-Client-Key", KEY)
        sample.add_header("Session", users[3][1])
        sample.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        with urllib.request.urlopen(sample, timeout=30) as resp:
            public_path = json.loads(resp.read())["publicPath"]

        # 100,000 items in 1,000 categories: each filter matches 100, sorted, first 20 returned.
        # Seeded only when that row runs.
        seed = 100 if wanted("POST get-list (100k objects)") else 0
        for batch in range(seed):
            items = [{"category": f"c{i % 1000}", "rank": i, "title": f"item {i}", "price": i % 97}
                     for i in range(batch * 1000, (batch + 1) * 1000)]
            request(f"{base}/_api/rest/v1/db/create", "POST", {"model": "items", "values": items},
                    {"Session": users[4][1]})
        get_list = lua(tmp, "get-list.lua", """
local n = 0
request = function()
  n = n + 1
  local body = '{"model":"items","returnCountInfo":false,"query":{"expression":"category == \\'c' .. (n % 1000) .. '\\'","lookups":null,"page":null,"limit":20,"sort":[{"field":"rank","direction":"desc"}],"omit":null,"group":null}}'
  return wrk.format("POST", "/_api/rest/v1/db/get-list",
    {["Content-Type"] = "application/json", ["X-Client-Key"] = "KEY"}, body)
end
""".replace("KEY", KEY))

        rows = []
        c, s = args.connections, args.seconds
        cases = [
            ("GET /health", f"{base}/health", None, ()),
            ("GET /auth/user", f"{base}/_api/rest/v1/auth/user", None,
             (f"X-Client-Key: {KEY}", f"Session: {token}")),
            ("GET /auth/sessions", f"{base}/_api/rest/v1/auth/sessions", None,
             (f"X-Client-Key: {KEY}", f"Session: {users[1][1]}")),
            ("POST signin-email", base, signin, ()),
            ("POST signup-email", base, signup, ()),
            ("POST db/object/update (own)", base, update, ()),
            ("POST upload 100 KiB", base, upload, ()),
            ("POST get-list (100k objects)", base, get_list, ()),
            ("GET public file 100 KiB", public_path, None, ()),
        ]
        for name, url, script, headers in cases:
            if not wanted(name):
                continue
            for p in procs:
                reset_peak(p.pid)
            out = wrk(url, s, c, script, headers, nodes=spread_over).communicate()[0]
            rps, p50, p99, errors = parse_wrk(out)
            rows.append((name, rps, p50, p99, errors, [rss_kib(p.pid, "VmHWM") for p in procs]))

        # /health while sign-ins saturate the hashing pool.
        if wanted("GET /health during sign-ins"):
            for p in procs:
                reset_peak(p.pid)
            load = wrk(base, s, c, signin, nodes=spread_over)
            time.sleep(0.5)
            probe = wrk(f"{base}/health", s - 1, 4, threads=1, nodes=spread_over)
            probe_out = probe.communicate()[0]
            load.communicate()
            rps, p50, p99, errors = parse_wrk(probe_out)
            rows.append(("GET /health during sign-ins", rps, p50, p99, errors,
                         [rss_kib(p.pid, "VmHWM") for p in procs]))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = []
        for p in procs:
            try:
                codes.append(str(p.wait(timeout=40)))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append("killed")
        if database:
            psql(args.postgres, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)

    def mib(values):
        return " / ".join(f"{v / 1024:.1f}" for v in values)

    if args.postgres:
        pool = args.pool or "default (10)"
        nodes = f"{args.nodes} node{'s' if args.nodes > 1 else ''}"
        store = (f"PostgreSQL {pg_version} synchronous_commit={pg_sync}, {nodes}, "
                 f"pool {pool} per node")
    else:
        store = "SQLite synchronous=FULL"
    limits = ""
    if args.rate_limits:
        limits = ", rate limits counted in " + (
            "Redis" if args.redis else "PostgreSQL" if args.postgres else "memory")
    print(f"\nBasalt benchmark: {c} connections, {s} s each, wrk on loopback, "
          f"{os.cpu_count()} cores, {store}{limits}\n")
    rss = "peak RSS MiB" if len(procs) == 1 else "peak RSS MiB per node"
    width = max([len(rss)] + [len(mib(peak)) for *_, peak in rows])
    print(f"| {'endpoint':<28} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6} | {rss:>{width}} |")
    print(f"|{'-'*30}|{'-'*11}|{'-'*9}|{'-'*9}|{'-'*8}|{'-'*(width + 2)}|")
    for name, rps, p50, p99, errors, peak in rows:
        print(f"| {name:<28} | {rps:>9.0f} | {p50:>7.2f} | {p99:>7.2f} | {errors:>6} | {mib(peak):>{width}} |")
    signin = [rps for name, rps, *_ in rows if name == "POST signin-email"]
    if signin:
        print(f"\nArgon2id pool capacity (basalt hash-rate): {hash_rate:.1f} hashes/s; "
              f"sign-in reached {100 * signin[0] / hash_rate:.0f} % of it")
    startup = " / ".join(f"{ms:.1f}" for ms in startups)
    print(f"idle RSS: {mib(idle_rss)} MiB; start-up (spawn to ready banner): {startup} ms; "
          f"exit code after SIGTERM: {', '.join(codes)}")


if __name__ == "__main__":
    sys.exit(main())

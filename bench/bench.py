#!/usr/bin/env python3
"""Start the release binary on a fresh data dir, seed users through the API, drive it with
wrk at 64 connections on loopback and print a table. Bounded in time; stops by itself."""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


def wrk(url, seconds, connections, script=None, headers=(), threads=2):
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--only", default="",
                    help="run only the rows whose name contains this text (case-insensitive)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="basalt-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update({
        "BASALT_LISTEN": f"127.0.0.1:{port}",
        "BASALT_PUBLIC_URL": base,
        "BASALT_DATA_DIR": os.path.join(tmp, "data"),
        "BASALT_CLIENT_KEYS": KEY,
        "BASALT_RATE_LIMITS__ENABLED": "false",
        "BASALT_AUTH__EMAIL_VERIFICATION": "false",
        "BASALT_LOG": "warn",
    })

    # Hashing capacity of this machine with the configured parameters, same binary.
    hash_out = subprocess.run([args.bin, "hash-rate", "--seconds", "5"], env=env,
                              capture_output=True, text=True, check=True).stdout
    hash_rate = float(re.search(r"([\d.]+) hashes/s", hash_out).group(1))

    # A declared model for the filtered get-list: 100,000 objects, an index on the filtered
    # field that also holds the sort key, so a page reads only its 20 rows.
    config_path = os.path.join(tmp, "basalt.toml")
    with open(config_path, "w") as f:
        f.write('[[database.models]]\nname = "items"\naccess = "public_read"\n'
                'indexes = [{ fields = ["category"], sort = ["rank"] }]\n')

    started = time.monotonic()
    proc = subprocess.Popen([args.bin, "--config", config_path, "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        # Ready = the banner is printed (the listener is bound and the database migrated).
        proc.stdout.readline()
        startup_ms = (time.monotonic() - started) * 1000
        time.sleep(1)
        idle_rss = rss_kib(proc.pid, "VmRSS")

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
        for batch in range(100):
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
            if args.only.lower() not in name.lower():
                continue
            reset_peak(proc.pid)
            out = wrk(url, s, c, script, headers).communicate()[0]
            rps, p50, p99, errors = parse_wrk(out)
            rows.append((name, rps, p50, p99, errors, rss_kib(proc.pid, "VmHWM")))

        # /health while sign-ins saturate the hashing pool.
        if args.only.lower() in "get /health during sign-ins":
            reset_peak(proc.pid)
            load = wrk(base, s, c, signin)
            time.sleep(0.5)
            probe = wrk(f"{base}/health", s - 1, 4, threads=1)
            probe_out = probe.communicate()[0]
            load.communicate()
            rps, p50, p99, errors = parse_wrk(probe_out)
            rows.append(("GET /health during sign-ins", rps, p50, p99, errors,
                         rss_kib(proc.pid, "VmHWM")))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"

    print(f"\nBasalt benchmark: {c} connections, {s} s each, wrk on loopback, "
          f"{os.cpu_count()} cores, SQLite synchronous=FULL\n")
    print(f"| {'endpoint':<28} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6} | {'peak RSS MiB':>12} |")
    print(f"|{'-'*30}|{'-'*11}|{'-'*9}|{'-'*9}|{'-'*8}|{'-'*14}|")
    for name, rps, p50, p99, errors, peak in rows:
        print(f"| {name:<28} | {rps:>9.0f} | {p50:>7.2f} | {p99:>7.2f} | {errors:>6} | {peak/1024:>12.1f} |")
    signin = [rps for name, rps, *_ in rows if name == "POST signin-email"]
    if signin:
        print(f"\nArgon2id pool capacity (basalt hash-rate): {hash_rate:.1f} hashes/s; "
              f"sign-in reached {100 * signin[0] / hash_rate:.0f} % of it")
    print(f"idle RSS: {idle_rss/1024:.1f} MiB; start-up (spawn to ready banner): {startup_ms:.1f} ms; "
          f"exit code after SIGTERM: {code}")


if __name__ == "__main__":
    sys.exit(main())

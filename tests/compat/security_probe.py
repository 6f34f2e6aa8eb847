#!/usr/bin/env python3
"""Probes one otpd binary for the findings of the security review (issue 18), black-box and
on loopback only: prints FIXED (hardened behaviour) or OPEN (the old one) per finding.
Usage: python3 tests/compat/security_probe.py PATH_TO_OTPD"""
import base64, json, os, socket, subprocess, sys, tempfile, time, urllib.request, stat

BIN = os.path.abspath(sys.argv[1])


def start(workdir, env=None, config=None):
    args = [BIN, "serve", "--listen", "127.0.0.1:0"]
    e = dict(os.environ)
    e.pop("OTPD_CONFIG", None)
    e.update(env or {})
    if config:
        path = os.path.join(workdir, "otpd.toml")
        open(path, "w").write(config)
        args += ["--config", path]
    p = subprocess.Popen(args, cwd=workdir, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = []
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("no start: " + p.stderr.read())
        out.append(line)
        if line.startswith("otpd listening on "):
            return p, line.split()[-1], "".join(out)


def creds(workdir, printed):
    f = os.path.join(workdir, "otpd-first-start.json")
    if os.path.exists(f):
        return json.load(open(f))
    app = {}
    for line in printed.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            app[k.strip()] = v.strip()
    return {"apiKey": app.get("API key (X-API-KEY)"), "accountSid": app.get("account SID"),
            "authToken": app.get("auth token"), "serviceSid": app.get("service SID")}


def req(base, method, path, body=None, headers=None):
    data = body.encode() if isinstance(body, str) else body
    r = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode(errors="replace"), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), dict(e.headers)


def raw(base, data, wait=10):
    host, port = base.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(data)
    s.settimeout(wait)
    chunks = []
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    except socket.timeout:
        return None
    return b"".join(chunks).decode(errors="replace")


def report(name, fixed):
    print(f"{'FIXED' if fixed else 'OPEN '}  {name}")


d = tempfile.mkdtemp()
p, base, printed = start(d)
c = creds(d, printed)
key = c["apiKey"]
J = {"X-API-KEY": key, "Content-Type": "application/json"}
basic = "Basic " + base64.b64encode(f"{c['accountSid']}:{c['authToken']}".encode()).decode()
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(); listener.setblocking(False)
lport = listener.getsockname()[1]

st, body, _ = req(base, "POST", "/otp", json.dumps({"phoneNumber": "+33612345678", "otpCallbackUrl": f"http://127.0.0.1:{lport}/x"}), J)
report("1 SSRF: otpCallbackUrl to 127.0.0.1 refused at create", st == 400)
st, body, _ = req(base, "POST", f"/admin/v1/services/{c['serviceSid']}/webhooks", json.dumps({"url": f"http://2130706433:{lport}/x"}), {"Authorization": basic, "Content-Type": "application/json"})
report("1 SSRF: admin webhook to 2130706433 refused", st == 400)
pad = "x" * (200 * 1024)
b = json.dumps({"phoneNumber": "+33612345679", "pad": pad}).encode()
chunked = b"".join(f"{len(b[i:i+8192]):x}\r\n".encode() + b[i:i+8192] + b"\r\n" for i in range(0, len(b), 8192)) + b"0\r\n\r\n"
ans = raw(base, f"POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-API-KEY: {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunked)
report("2 chunked 200 KiB body answered 413 JSON", ans is not None and ans.startswith("HTTP/1.1 413") and "application/json" in ans)
host, port = base.split("//")[1].split(":")
slow = socket.create_connection((host, int(port))); slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"); slow.settimeout(14)
try:
    closed = slow.recv(100) is not None
except socket.timeout:
    closed = False
report("3 slow headers closed within 14 s", closed)
ans = raw(base, f"GET /otp/%FF%FE HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-API-KEY: {key}\r\n\r\n".encode())
report("7 invalid UTF-8 path answered JSON", ans is not None and "application/json" in ans)
for n in range(30):
    req(base, f"MADEUP{n}", "/healthz")
st, body, _ = req(base, "GET", "/metrics")
report("7 made-up methods are not metric labels", "MADEUP" not in body)
st, body, _ = req(base, "POST", "/otp", json.dumps({"phoneNumber": "+33612345670", "template": "x" * 60000 + " {{pin}}"}), J)
report("7 60,000-character template refused", st == 400)
st, body, _ = req(base, "POST", "/otp", json.dumps({"phoneNumber": "+33612345671", "from": "Acme\r\nX"}), J)
report("7 sender id with CR/LF refused", st == 400)
st, body, _ = req(base, "GET", "/v2/Services", None, {"Authorization": basic, "Host": "evil.example"})
report("7 forged Host not in Twilio links", "evil.example" not in body)
mode = stat.S_IMODE(os.stat(os.path.join(d, "otpd.db")).st_mode)
report("7 database file created 0600", mode == 0o600)
st, body, _ = req(base, "POST", "/otp", json.dumps({"phoneNumber": "+33612345672"}), J)
otp = json.loads(body)["otpId"]
time.sleep(0.3)
st, inbox, _ = req(base, "GET", "/dev/inbox.json?to=%2B33612345672")
code = json.loads(inbox)[0]["body"].split()[-1]
arabic = "".join(chr(0x0660 + int(ch)) for ch in code)
st, body, _ = req(base, "POST", f"/otp/{otp}", json.dumps({"pin": arabic}), J)
report("8 Arabic-Indic digits accepted", st == 200)
st, body, _ = req(base, "GET", "/dev/inbox.json", None, {"Host": "evil.example"})
report("5 dev inbox refuses a non-loopback Host", st == 404)
statuses = [req(base, "POST", "/otp", "{}", {"X-API-KEY": "wrong", "Content-Type": "application/json"})[0] for _ in range(30)]
report("8 failed authentications throttled (429)", 429 in statuses)
try:
    listener.accept(); touched = True
except BlockingIOError:
    touched = False
report("1 nothing connected to the loopback bystander", not touched)
p.terminate(); p.wait()

# Production: a channel without a route; console routed; first-start secrets.
d = tempfile.mkdtemp()
try:
    p, base, printed = start(d, config='dev_mode = false\n[routes]\nsms = ["null"]\n')
    c = creds(d, printed)
    report("7 production first start does not print secrets", c.get("applicationSecret", "") not in printed if "applicationSecret" in c else ("application secret" not in printed))
    key = c.get("apiKey")
    st, body, _ = req(base, "POST", "/otp", json.dumps({"phoneNumber": "+33612345673", "channel": "call"}), {"X-API-KEY": key, "Content-Type": "application/json"})
    p.terminate(); out = p.communicate()[0]
    report("4 production: unrouted channel refused, no code printed", st == 400 and "message=" not in out)
except SystemExit as e:
    report("4/7 production start (" + str(e)[:60] + ")", False)
d = tempfile.mkdtemp()
r = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--config", "/dev/null"], cwd=d, capture_output=True, text=True, timeout=5) if False else None
open(os.path.join(d, "c.toml"), "w").write('dev_mode = false\n[routes]\nsms = ["console"]\n')
try:
    r = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--config", os.path.join(d, "c.toml")], cwd=d, capture_output=True, text=True, timeout=4)
    refused = r.returncode != 0
except subprocess.TimeoutExpired:
    refused = False
report("4 production refuses to start with console routed", refused)
d = tempfile.mkdtemp()
env = dict(os.environ); env.pop("OTPD_CONFIG", None); env.pop("OTPD_DEV_MODE", None)
try:
    r = subprocess.run([BIN, "serve", "--listen", "0.0.0.0:0"], cwd=d, capture_output=True, text=True, timeout=4, env=env)
    refused = r.returncode != 0
except subprocess.TimeoutExpired:
    refused = False
report("5 implicit dev mode refuses 0.0.0.0", refused)
r = subprocess.run([BIN, "account", "--help"], capture_output=True, text=True)
report("7 otpd account rotate-token exists", "rotate-token" in r.stdout)

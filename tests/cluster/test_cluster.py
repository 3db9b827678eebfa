#!/usr/bin/env python3
"""tests/cluster/test_cluster.py — the vrwkv cluster as separate processes with real sockets and a
real redis-server, started by deploy/local/cluster (coordinator, vision worker, 2 layer shards on
the tiny fixture model) and driven only through `vrwkv client`:
  1. every forward case x scan mode gives the fixture greedy tokens, the image features going from
     the vision worker straight to stage 0;
  2. multi-turn resumes after a shard is killed and restarted, the coordinator is restarted,
     and redis is restarted between the turns;
  3. 32 concurrent sessions each equal the same request served alone;
  4. bad input gets the right status with a clear message and leaves the cluster serving
     (auth, another tenant's session, unknown session, bad image, prompt limit, a corrupted state
     blob in redis), a stopped vision worker holds up only the turn that needs it, and
     requests cancelled mid-stream leak no fds or threads;
  6. a replacement shard joining beside a live one takes over its sessions' states over the
     transport, and the next turns stay exact.
Python stdlib only. Usage: test_cluster.py VRWKV SHARED_DIR. Exit 77 (skip) when the fixtures or
redis-server are missing. Env: VRWKV_CLUSTER_CANCELS (default 1000), VRWKV_CLUSTER_KEEP=1 keeps
the run directory."""
import concurrent.futures, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fixture_turns import expected_run, tokens_match  # noqa: E402

VRWKV, SHARED = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
FIX = os.path.join(SHARED, "fixtures")
HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER = os.path.join(HERE, "..", "..", "deploy", "local", "cluster")
if not os.path.exists(os.path.join(FIX, "README.md")):
    print(f"SKIP: {FIX} not found; the cluster tests cannot run", file=sys.stderr)
    sys.exit(77)
if not shutil.which("redis-server"):
    print("SKIP: redis-server is not installed; the cluster tests cannot run", file=sys.stderr)
    sys.exit(77)
VOCAB = os.path.join(SHARED, "rwkv_vocab_v20230424.txt")
MODEL = os.path.join(FIX, "tiny", "model.pth")
CONFIG = os.path.join(FIX, "tiny", "model.json")
MAX_PROMPT = 200  # the coordinator's --max-prompt-tokens (every fixture prompt is shorter)
N_CANCELS = int(os.environ.get("VRWKV_CLUSTER_CANCELS", "1000"))
failures, checks = [], 0


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr, flush=True)
    return cond


def section(name):
    print(f"--- {name} ({time.strftime('%H:%M:%S')}, {checks - len(failures)} passed, {len(failures)} failed so far)",
          file=sys.stderr, flush=True)


def load(rel):
    with open(os.path.join(FIX, rel), encoding="utf-8") as f:
        return json.load(f)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


prompts = load("prompts.json")
images = load("images/images.json")["images"]
fw = load("tiny/forward.json")
mt = load("tiny/multiturn.json")
N_LAYER = load("tiny/model.json")["rwkv"]["n_layer"]


def image_file(name):
    return os.path.join(FIX, "images", os.path.basename(images[name]["file"]))


# ---------------------------------------------------------------- cluster and client

RUNDIR = tempfile.mkdtemp(prefix="vrwkv-cluster-")
PORT = free_port()
RPORT = free_port()
while RPORT == PORT:
    RPORT = free_port()
ADDR = f"127.0.0.1:{PORT}"
KEY_A = "alpha-" + os.urandom(12).hex()
KEY_B = "beta-" + os.urandom(12).hex()
TENANT_A = "alpha"


def cluster(*args, timeout=180):
    p = subprocess.run([CLUSTER] + list(args) + ["--dir", RUNDIR], capture_output=True, timeout=timeout)
    out = (p.stdout + p.stderr).decode(errors="replace").strip()
    return p.returncode, out


def client(args, key=KEY_A, timeout=120):
    cmd = [VRWKV, "client", "--addr", ADDR] + (["--api-key", key] if key else []) + list(args)
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, b"", f"client timed out after {timeout}s".encode()
    return p.returncode, p.stdout, p.stderr


def generate(args, key=KEY_A, timeout=120):
    """(result dict or None, rc, stderr text) of `vrwkv client --json`."""
    rc, out, err = client(["--json"] + list(args), key, timeout)
    err = err.decode(errors="replace").strip()
    if rc != 0:
        return None, rc, err
    try:
        return json.loads(out), rc, err
    except ValueError:
        return None, rc, f"not JSON: {out[:200]!r} {err}"


def case_args(case, mode, max_tokens=12):
    q = prompts["prompts"][case["prompt_id"]]["question"]
    return ["--image", image_file(case["image"]), "--image-position", case["image_position"], "--scan", mode,
            "--max-tokens", str(max_tokens), q]


CASES = {c["id"]: c for c in fw["cases"]}


def good(what):
    """After anything bad: a plain request still gets the fixture answer."""
    case = CASES["c0"]
    r, rc, err = generate(case_args(case, "uni"))
    want, complete = expected_run(case["modes"]["uni"]["greedy"], 12)
    check(r is not None and tokens_match(r["tokens"], want, complete),
          f"after {what}: a good request failed or differs: rc {rc} {err} {r and r['tokens']}")


def expect_error(what, args, status, needles=(), key=KEY_A, forbidden=()):
    rc, out, err = client(args, key)
    err = err.decode(errors="replace").strip()
    ok = check(rc == 1, f"{what}: exit status {rc} (want 1), stderr {err!r}")
    ok &= check(err.startswith(f"vrwkv client: {status}: "), f"{what}: stderr {err!r} is not '{status}: ...'")
    msg = err.split(": ", 2)[-1] if ok else err
    ok &= check(len(msg) > 3, f"{what}: no message in {err!r}")
    for n in needles:
        ok &= check(n in msg, f"{what}: message {msg!r} does not name {n!r}")
    for n in forbidden:
        ok &= check(n not in err and n.encode() not in out, f"{what}: the answer leaks {n!r}: {err!r}")
    if ok:
        print(f"ok: {what}: {err}", file=sys.stderr)
    good(what)


def log_text(name):
    with open(os.path.join(RUNDIR, f"{name}.log"), errors="replace") as f:
        return f.read()


def proc_counts(name):
    """(fds, threads, rss KiB) of a cluster process."""
    with open(os.path.join(RUNDIR, f"{name}.pid")) as f:
        pid = int(f.read())
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return fds, threads, rss


# ---------------------------------------------------------------- redis over a raw socket (RESP)

class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise IOError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise IOError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            raise IOError("redis: " + rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise IOError(f"redis: unexpected reply {line!r}")

    def cmd(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(parts))
        return self._reply()

    def close(self):
        self.s.close()


# ---------------------------------------------------------------- the tests

def test_forward():
    section("1. forward cases x scan modes")
    for case in fw["cases"]:
        for mode in ("uni", "bi", "multi"):
            what = f"forward {case['id']} {mode}"
            r, rc, err = generate(case_args(case, mode))
            if not check(r is not None, f"{what}: rc {rc}: {err}"):
                continue
            check(r["prompt_tokens"] == case["input_ids"], f"{what}: prompt_tokens {r['prompt_tokens']}, fixture {case['input_ids']}")
            want, complete = expected_run(case["modes"][mode]["greedy"], 12)
            check(tokens_match(r["tokens"], want, complete), f"{what}: tokens {r['tokens']}, fixture {want}")
            check(r["session"] == "", f"{what}: a one-shot request returned session {r['session']!r}")
            check(r["finish_reason"] in ("stop", "length"), f"{what}: finish_reason {r['finish_reason']!r}")
            if complete is not None:
                check(r["finish_reason"] == ("stop" if complete else "length"),
                      f"{what}: finish_reason {r['finish_reason']!r}")
            check(r.get("usage", {}).get("generated_tokens") == len(r["tokens"]),
                  f"{what}: usage {r.get('usage')} vs {len(r['tokens'])} tokens")
    # the image features went from the vision worker straight to stage 0, never back through the
    # coordinator (its fallback); shard 0 took the vision worker's connection
    vision_log = log_text("vision")
    n_images = sum(1 for c in fw["cases"] if c.get("image") or -200 in c["input_ids"]) * 3
    delivered = vision_log.count("event=features_delivered")
    check(delivered >= n_images > 0, f"vision.log shows {delivered} direct deliveries for {n_images} images")
    check("event=features_inline" not in vision_log,
          "a delivery to stage 0 fell back to inline features: " +
          next((l for l in vision_log.splitlines() if "features_inline" in l), ""))
    check("role=vision" in log_text("shard-0"), "shard-0.log shows no vision connection")


def multiturn_cases():
    for case in mt["cases"]:
        if case["id"] not in ("c0_t2", "c2_t2"):
            continue
        base = CASES[case["base_case"]]
        for mode in ("uni", "bi", "multi"):
            yield case, base, mode


def turn1(case, base, mode, key=KEY_A, what=""):
    r, rc, err = generate(["--new-session"] + case_args(base, mode))
    if not check(r is not None, f"{what} turn 1: rc {rc}: {err}"):
        return None
    check(r["tokens"] == case["modes"][mode]["answer_tokens_used"],
          f"{what} turn 1: tokens {r['tokens']}, fixture {case['modes'][mode]['answer_tokens_used']}")
    check(bool(r["session"]), f"{what} turn 1: no session id returned")
    return r["session"] or None


def turn2(case, mode, sid, key=KEY_A, what=""):
    r, rc, err = generate(["--session", sid, "--max-tokens", "8", prompts["followup_question"]], key)
    if not check(r is not None, f"{what} turn 2: rc {rc}: {err}"):
        return False
    ok = check(r["prompt_tokens"] == case["turn2_ids"], f"{what} turn 2: prompt_tokens {r['prompt_tokens']}, fixture {case['turn2_ids']}")
    want, complete = expected_run(case["modes"][mode]["greedy"], 8)
    ok &= check(tokens_match(r["tokens"], want, complete), f"{what} turn 2: tokens {r['tokens']}, fixture {want}")
    ok &= check(r["session"] == sid, f"{what} turn 2: session {r['session']!r}, want {sid!r}")
    return ok


def test_multiturn():
    for disruption in (("kill-shard", "1"), ("restart-coordinator",), ("restart-redis",)):
        section(f"2. multi-turn across {' '.join(disruption)}")
        sessions = []
        for case, base, mode in multiturn_cases():
            what = f"multiturn {case['id']} {mode} [{disruption[0]}]"
            sid = turn1(case, base, mode, what=what)
            if sid:
                sessions.append((case, mode, sid, what))
        rc, out = cluster(*disruption)
        check(rc == 0, f"cluster {' '.join(disruption)} failed: {out}")
        if disruption[0] == "kill-shard":
            # with a layer range missing, a request ends with a clear error instead of hanging
            t0 = time.time()
            r, rc, err = generate(case_args(CASES["c0"], "uni"), timeout=60)
            check(r is None and rc == 1 and err.startswith("vrwkv client: ") and len(err) > 30,
                  f"a request while shard 1 is down: rc {rc} after {time.time() - t0:.1f}s: {err!r}")
            print(f"info: while shard 1 is down ({time.time() - t0:.1f}s): {err}", file=sys.stderr)
            health = []
            for _ in range(20):
                rc, out_h, _ = client(["--health"], key=None)
                health.append(out_h.decode().strip())
                if rc != 0:
                    break
                time.sleep(0.5)
            print(f"info: health while shard 1 is down: {health[-1]!r} after {len(health)} probes", file=sys.stderr)
            rc, out = cluster("start-shard", "1")
            check(rc == 0, f"cluster start-shard 1 failed: {out}")
        for case, mode, sid, what in sessions:
            turn2(case, mode, sid, what=what)
        if disruption[0] == "kill-shard":  # the restarted shard loaded its layers' state from redis
            log = log_text("shard-1")
            for case, mode, sid, what in sessions:
                check(f"event=state_restored" in log and f"session={sid}" in log,
                      f"{what}: shard-1.log shows no state_restored for session {sid}")


def test_concurrent():
    section("3. 32 concurrent sessions")
    reqs = []
    combos = [(c, m) for c in fw["cases"] for m in ("uni", "bi", "multi")]
    for i in range(32):
        case, mode = combos[i % len(combos)]
        reqs.append((case, mode))

    def dialogue(case, mode):
        r1, rc, err = generate(["--new-session"] + case_args(case, mode))
        if r1 is None:
            return None, f"turn 1 rc {rc}: {err}"
        r2, rc, err = generate(["--session", r1["session"], "--max-tokens", "8", prompts["followup_question"]])
        if r2 is None:
            return None, f"turn 2 rc {rc}: {err}"
        return (r1["tokens"], r2["tokens"]), ""

    alone = [dialogue(c, m) for c, m in reqs]
    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        together = list(ex.map(lambda cm: dialogue(*cm), reqs))
    for i, ((case, mode), a, t) in enumerate(zip(reqs, alone, together)):
        what = f"concurrent #{i} {case['id']} {mode}"
        if not check(a[0] is not None, f"{what}: served alone failed: {a[1]}"):
            continue
        if not check(t[0] is not None, f"{what}: served concurrently failed: {t[1]}"):
            continue
        check(a[0] == t[0], f"{what}: alone {a[0]}, concurrently {t[0]}")
        want, complete = expected_run(case["modes"][mode]["greedy"], 12)
        check(tokens_match(a[0][0], want, complete), f"{what}: turn 1 {a[0][0]}, fixture {want}")


def test_bad_input():
    section("4a. bad input")
    case = CASES["c0"]
    expect_error("missing API key", case_args(case, "uni"), "UNAUTHENTICATED", key=None)
    expect_error("wrong API key", case_args(case, "uni"), "UNAUTHENTICATED", key="wrong-" + os.urandom(8).hex())
    expect_error("unknown session", ["--session", "no-such-session-4242", "hello"], "NOT_FOUND")
    bad = os.path.join(RUNDIR, "bad.jpg")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not a JPEG " * 10)
    expect_error("undecodable image", ["--image", bad, "What is in this image?"], "INVALID_ARGUMENT")
    txt = os.path.join(RUNDIR, "notimage.png")
    with open(txt, "wb") as f:
        f.write(b"plain text, no image at all\n")
    expect_error("text as image", ["--image", txt, "What is in this image?"], "INVALID_ARGUMENT")
    long_q = " ".join(f"word{i}" for i in range(MAX_PROMPT * 2))
    expect_error("prompt over the limit", [long_q], "INVALID_ARGUMENT", needles=(str(MAX_PROMPT),))
    expect_error("image prompt over the limit", ["--image", image_file("img0"), long_q], "INVALID_ARGUMENT",
                 needles=(str(MAX_PROMPT),))


def test_tenants():
    section("4b. another tenant's session")
    mcase = next(c for c in mt["cases"] if c["id"] == "c0_t2")
    base = CASES["c0"]
    sid = turn1(mcase, base, "uni", what="tenant A")
    if not sid:
        return
    leaks = (sid, TENANT_A, KEY_A)
    expect_error("tenant B continues A's session", ["--session", sid, "hello"], "NOT_FOUND", key=KEY_B, forbidden=leaks[1:])
    expect_error("tenant B reads A's session", ["--get-session", sid], "NOT_FOUND", key=KEY_B, forbidden=leaks[1:])
    rc, out, err = client(["--delete-session", sid], KEY_B)
    check(rc == 1 and b"NOT_FOUND" in err or rc == 0 and b'"deleted": false' in out,
          f"tenant B deletes A's session: rc {rc} {out!r} {err!r}")
    check(TENANT_A.encode() not in out + err and KEY_A.encode() not in out + err, f"delete by B leaks: {out!r} {err!r}")
    rc, out, err = client(["--get-session", sid])
    check(rc == 0 and json.loads(out or b"{}").get("committed_turn") == 1, f"A's session after B's attempts: rc {rc} {out!r} {err!r}")
    turn2(mcase, "uni", sid, what="tenant A after B's attempts")
    rc, out, err = client(["--delete-session", sid])
    check(rc == 0 and b'"deleted": true' in out, f"A deletes its session: rc {rc} {out!r} {err!r}")
    expect_error("a deleted session", ["--session", sid, "hello"], "NOT_FOUND")
    expect_error("get a deleted session", ["--get-session", sid], "NOT_FOUND")


def corrupt_upper_blobs(*sids):
    """Corrupts the sessions' state blobs of shard 1's layers in redis and restarts shard 1, so
    that their next turns find no usable state there and must be rebuilt from the transcript."""
    r = Redis(RPORT)
    try:
        for sid in sids:
            keys = sorted(k.decode() for k in r.cmd("KEYS", f"vrwkv:{TENANT_A}:{sid}:blob:*"))
            upper = [k for k in keys if int(k.rsplit(":", 1)[1]) >= N_LAYER // 2]
            if not check(upper, f"no state blobs of layers >= {N_LAYER // 2} in redis for {sid} (keys: {keys})"):
                return False
            for k in upper:
                v = bytearray(r.cmd("GET", k))
                for off in (len(v) // 2, len(v) - 5):  # payload bytes, not only the header
                    v[off] ^= 0x5A
                check(r.cmd("SET", k, bytes(v), "KEEPTTL") == b"OK", f"SET {k} failed")
    finally:
        r.close()
    rc, out = cluster("kill-shard", "1")
    check(rc == 0, f"kill-shard 1: {out}")
    rc, out = cluster("start-shard", "1")
    return check(rc == 0, f"start-shard 1: {out}")


def restart_coordinator_with(extra):
    """Restarts the coordinator with extra arguments (none: as it was started)."""
    path = os.path.join(RUNDIR, "coordinator.cmd")
    orig = path + ".orig"
    if not os.path.exists(orig):
        shutil.copy(path, orig)
    with open(orig) as f:
        cmd = f.read().rstrip("\n")
    with open(path, "w") as f:
        f.write(cmd + (" " + extra if extra else "") + "\n")
    rc, out = cluster("restart-coordinator")
    return check(rc == 0, f"restart-coordinator {extra}: {out}")


def test_stuck_vision():
    """Rebuilds that must encode their image again wait for the vision worker on a thread of
    their own. With the batch full of them (the coordinator restarted with --max-batch 2) and the
    vision worker stopped (SIGSTOP: a hung process), a text-only turn that arrives after their
    encodes began is still admitted and served; the rebuilds complete exactly once the vision
    worker runs again (within its heartbeat timeout)."""
    section("4e. stuck vision worker: only the turns that need it wait (a full batch of them)")
    mcase = next(c for c in mt["cases"] if c["id"] == "c2_t2")
    modes = ("uni", "bi")
    sids = [turn1(mcase, CASES[mcase["base_case"]], m, what=f"stuck vision {m}") for m in modes]
    text_args = ["--max-tokens", "8", prompts["followup_question"]]
    alone, rc, err = generate(text_args)
    if not check(all(sids) and alone is not None, f"stuck vision: setup failed: rc {rc}: {err}"):
        return
    if not corrupt_upper_blobs(*sids) or not restart_coordinator_with("--max-batch 2"):
        restart_coordinator_with("")
        return
    with open(os.path.join(RUNDIR, "vision.pid")) as f:
        vision_pid = int(f.read())

    def rebuilding():
        log = [l for l in log_text("coordinator").splitlines() if "event=state_rebuild" in l]
        return sum(1 for sid in sids if any(sid in l for l in log))

    os.kill(vision_pid, signal.SIGSTOP)
    ex = concurrent.futures.ThreadPoolExecutor(4)
    rebuilds = []
    try:
        rebuilds = [ex.submit(generate, ["--session", sid] + text_args) for sid in sids]
        deadline = time.time() + 30
        while time.time() < deadline and rebuilding() < len(sids):
            time.sleep(0.05)
        if not check(rebuilding() == len(sids), "stuck vision: the turns after the corrupted blobs were not rebuilt"):
            return
        time.sleep(0.2)  # their encodes are under way: a rebuild logs just before it asks
        other = ex.submit(generate, text_args)
        while not other.done() and not any(r.done() for r in rebuilds):
            time.sleep(0.05)
        check(other.done() and not any(r.done() for r in rebuilds),
              "stuck vision: a text-only turn waited for the stopped vision worker (the rebuilds' encodes "
              "held up the scheduler or filled the batch)")
        res, rc, err = other.result(timeout=120)
        check(res is not None and res["tokens"] == alone["tokens"],
              f"stuck vision: the text-only turn: rc {rc} {err} {res and res['tokens']} (alone {alone['tokens']})")
    finally:
        os.kill(vision_pid, signal.SIGCONT)
        ex.shutdown(wait=True)
        restart_coordinator_with("")
    for mode, fut in zip(modes, rebuilds):
        res, rc, err = fut.result()
        if check(res is not None, f"stuck vision {mode}: the rebuilt turn failed once the vision worker ran again: "
                                  f"rc {rc}: {err}"):
            want, complete = expected_run(mcase["modes"][mode]["greedy"], 8)
            check(tokens_match(res["tokens"], want, complete),
                  f"stuck vision {mode}: rebuilt turn tokens {res['tokens']}, fixture {want}")
    good("stuck vision")


def test_corrupt_blob():
    section("4c. corrupted state blob in redis")
    mcase = next(c for c in mt["cases"] if c["id"] == "c2_t2")
    base = CASES["c2"]
    sid = turn1(mcase, base, "bi", what="corrupt blob")
    if not sid:
        return
    if not corrupt_upper_blobs(sid):
        return
    res, rc, err = generate(["--session", sid, "--max-tokens", "8", prompts["followup_question"]])
    logs = log_text("shard-1") + log_text("coordinator")
    check(any("corrupt" in line and sid in line for line in logs.splitlines()),
          "the corrupted blob was not reported in shard-1.log or coordinator.log")
    if res is not None:  # rebuilt from the transcript: must still be exact
        want, complete = expected_run(mcase["modes"]["bi"]["greedy"], 8)
        check(tokens_match(res["tokens"], want, complete) and res["prompt_tokens"] == mcase["turn2_ids"],
              f"turn after a corrupted blob: tokens {res['tokens']} (fixture {want}) — garbage state was used")
        print(f"ok: corrupted blob: session rebuilt, tokens {res['tokens']}", file=sys.stderr)
    else:
        check(rc == 1 and err.startswith("vrwkv client: ") and len(err) > 30,
              f"turn after a corrupted blob: unclear failure rc {rc} {err!r}")
        print(f"ok?: corrupted blob refused: {err}", file=sys.stderr)
    good("corrupted blob")


def test_cancel():
    section(f"4d. {N_CANCELS} requests cancelled mid-stream")
    case = CASES["c3"]
    args = case_args(case, "uni", max_tokens=200)[:-1] + ["--stop", "65535", case_args(case, "uni")[-1]]

    def cancel_one(i):
        rnd = random.Random(i)
        cmd = [VRWKV, "client", "--addr", ADDR, "--api-key", KEY_A] + (["--new-session"] if i % 2 else []) + args
        if i % 3 == 0:  # deadline somewhere in the stream
            p = subprocess.run(cmd[:2] + ["--timeout-ms", str(rnd.randint(5, 300))] + cmd[2:], capture_output=True,
                               timeout=60)
            return p.returncode
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            p.stdout.read(1)  # the first streamed byte (or EOF)
            if i % 3 == 1:
                p.send_signal(signal.SIGINT)  # the client cancels the call
            else:
                p.kill()  # the connection just goes away
            p.wait(timeout=30)
        finally:
            p.stdout.close()
        return p.returncode

    for _ in range(10):  # warm up gRPC's own pools before measuring
        cancel_one(1)
    time.sleep(2)
    before = {n: proc_counts(n) for n in ("coordinator", "shard-0", "shard-1", "vision")}
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(cancel_one, range(N_CANCELS)))
    print(f"{N_CANCELS} cancelled requests in {time.time() - t0:.1f}s", file=sys.stderr)
    time.sleep(3)
    good("cancelled requests")
    after = {n: proc_counts(n) for n in before}
    for n in before:
        (f0, t0_, r0), (f1, t1, r1) = before[n], after[n]
        print(f"{n}: fds {f0} -> {f1}, threads {t0_} -> {t1}, rss {r0} -> {r1} KiB", file=sys.stderr)
        check(f1 <= f0 + 16, f"{n}: fd count grew {f0} -> {f1} over {N_CANCELS} cancelled requests")
        check(t1 <= t0_ + 16, f"{n}: thread count grew {t0_} -> {t1} over {N_CANCELS} cancelled requests")
        check(r1 <= r0 + 64 * 1024, f"{n}: RSS grew {r0} -> {r1} KiB over {N_CANCELS} cancelled requests")
    # the slots of cancelled sessions came back: 32 concurrent sessions still fit
    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        res = list(ex.map(lambda i: generate(["--new-session"] + case_args(CASES["c0"], "uni")), range(32)))
    want, complete = expected_run(CASES["c0"]["modes"]["uni"]["greedy"], 12)
    bad = [(rc, err) for r, rc, err in res if r is None or not tokens_match(r["tokens"], want, complete)]
    check(not bad, f"after the cancellations, {len(bad)} of 32 concurrent sessions failed: {bad[:3]}")


def dump_logs(lines=40):
    for name in sorted(os.listdir(RUNDIR)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(RUNDIR, name), errors="replace") as f:
            tail = f.readlines()[-lines:]
        print(f"----- {name} (last {len(tail)} lines)", file=sys.stderr)
        sys.stderr.write("".join(tail))


def main():
    with open(os.path.join(RUNDIR, "tenants-in.json"), "w") as f:
        json.dump({"tenants": [
            {"name": TENANT_A, "api_key": KEY_A, "max_prompt_tokens": 4096, "max_tokens": 1024},
            {"name": "beta", "api_key": KEY_B, "max_prompt_tokens": 4096, "max_tokens": 1024}]}, f)
    up = [CLUSTER, "up", "--dir", RUNDIR, "--model", MODEL, "--config", CONFIG, "--vocab", VOCAB, "--shards", "2",
          "--port", str(PORT), "--redis-port", str(RPORT), "--vrwkv", VRWKV,
          "--tenants", os.path.join(RUNDIR, "tenants-in.json"),
          "--coordinator-args", f"--max-prompt-tokens {MAX_PROMPT}", "--wait", "90"]
    t0 = time.time()
    p = subprocess.run(up, capture_output=True, timeout=300)
    out = (p.stdout + p.stderr).decode(errors="replace")
    if not check(p.returncode == 0, f"cluster up failed ({p.returncode}):\n{out}"):
        return
    print(f"cluster up in {time.time() - t0:.1f}s: {out.strip()}", file=sys.stderr)
    with open(os.path.join(RUNDIR, "api-key")) as f:
        check(f.read().strip() == KEY_A, "RUNDIR/api-key is not the first tenant's key")
    rc, out, err = client(["--health"], key=None)
    check(rc == 0 and out.strip() == b"SERVING", f"health: rc {rc} {out!r} {err!r}")
    rc, out, err = client(["--list-models"])
    check(rc == 0 and json.loads(out or b"{}").get("models", [{}])[0].get("n_layer") == N_LAYER,
          f"list-models: rc {rc} {out!r} {err!r}")
    for test in (test_forward, test_bad_input, test_multiturn, test_tenants, test_corrupt_blob, test_stuck_vision, test_concurrent,
                 test_cancel, test_replace_shard):
        try:
            test()
        except Exception as e:  # one broken part must not hide the others
            check(False, f"{test.__name__} raised {type(e).__name__}: {e}")


def test_replace_shard():
    """A replacement for shard 1 joins while shard 1 still runs (a rollout, a drained node): the
    pipeline takes the newer one, shard 1 hands its live states over the transport, and the
    sessions' next turns continue in the replacement's memory, exact, without the store. When the
    replacement dies, shard 1 (still registered) takes over again from the store."""
    section("6. a replacement shard takes over live states")
    sessions = []
    for case, base, mode in list(multiturn_cases())[:3]:
        what = f"handoff {case['id']} {mode}"
        sid = turn1(case, base, mode, what=what)
        if sid:
            sessions.append((case, mode, sid, what))
    if not check(len(sessions) == 3, "handoff: the first turns failed"):
        return
    import shlex
    with open(os.path.join(RUNDIR, "shard-1.cmd")) as f:
        cmd = shlex.split(f.read())
    for opt in ("--port", "--transport-port"):
        cmd[cmd.index(opt) + 1] = str(free_port())
    tport = cmd[cmd.index("--transport-port") + 1]
    log_path = os.path.join(RUNDIR, "shard-1b.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, handed = time.time() + 90, ""
        while time.time() < deadline and not handed:
            time.sleep(0.2)
            handed = next((l for l in log_text("coordinator").splitlines()
                           if "event=states_handed_off" in l and f":{tport} " in l + " "), "")
        if not check(handed, f"no states_handed_off to the replacement (transport port {tport}) in coordinator.log"):
            return
        check("sent=0" not in handed, f"the handoff sent nothing: {handed}")
        rlog = log_text("shard-1b")
        for case, mode, sid, what in sessions:
            check(any("event=state_received" in l and f"session={sid}" in l and "refused" not in l
                      for l in rlog.splitlines()), f"{what}: shard-1b.log shows no state_received for {sid}")
        for case, mode, sid, what in sessions:
            turn2(case, mode, sid, what=what + " (on the replacement)")
        rlog = log_text("shard-1b")
        for case, mode, sid, what in sessions:
            check(not any("event=state_restored" in l and f"session={sid}" in l for l in rlog.splitlines()),
                  f"{what}: the replacement restored {sid} from the store instead of using the handed state")
    finally:
        proc.kill()
        proc.wait()
    # shard 1 serves again once the replacement is gone
    case = fw["cases"][0]
    deadline, r = time.time() + 60, None
    while time.time() < deadline and r is None:
        r, rc, err = generate(case_args(case, "uni"))
        if r is None:
            time.sleep(1)
    if check(r is not None, f"after the replacement died: rc {rc}: {err}"):
        want, complete = expected_run(case["modes"]["uni"]["greedy"], 12)
        check(tokens_match(r["tokens"], want, complete), f"after the replacement died: tokens {r['tokens']}")


def on_term(sig, frame):  # ctest's timeout or a killed job: still stop the cluster below
    raise SystemExit(f"killed by signal {sig}")


signal.signal(signal.SIGTERM, on_term)
try:
    main()
finally:
    if failures:
        dump_logs()
    rc, out = cluster("down", timeout=120)
    if rc != 0:
        print(f"cluster down: {out}", file=sys.stderr)
    if failures or os.environ.get("VRWKV_CLUSTER_KEEP"):
        print(f"run directory kept: {RUNDIR}", file=sys.stderr)
    else:
        shutil.rmtree(RUNDIR, ignore_errors=True)
    print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)

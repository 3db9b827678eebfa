#!/usr/bin/env python3
"""tests/gpu/service_cases.py — the service on the GPU, as users reach it: `vrwkv serve
--backend cuda --shards 2` (coordinator, vision worker and two layer shards in one process, real
gRPC and transport sockets between them, every model op on the GPU) driven by `vrwkv client`:
  - every forward fixture case x scan mode gives the fixture's greedy tokens (up to the first
    fragile step, as tests/cluster does);
  - a two-turn session resumes with the fixture's second-turn tokens (state slots on the device,
    the checkpoint through pinned host memory to the embedded store);
  - 16 concurrent one-shot requests (batched prefill and decode on the shards) each give the
    fixture's tokens.
Called by tests/gpu/run.sh, where redis is absent: the embedded memory store serves.
Usage: service_cases.py VRWKV SHARED_DIR BACKEND. Exit 0 all passed, 1 some failed."""
import concurrent.futures, json, os, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fixture_turns import expected_run, tokens_match  # noqa: E402

VRWKV, SHARED, BACKEND = sys.argv[1], sys.argv[2], sys.argv[3]
FIX = os.path.join(SHARED, "fixtures")
failures, checks = [], 0


def load(rel):
    with open(os.path.join(FIX, rel), encoding="utf-8") as f:
        return json.load(f)


prompts = load("prompts.json")
images = load("images/images.json")["images"]
fw = load("tiny/forward.json")
mt = load("tiny/multiturn.json")
CASES = {c["id"]: c for c in fw["cases"]}


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = free_port()
ADDR = f"127.0.0.1:{PORT}"
KEY = "gpu-service-" + os.urandom(8).hex()


def image_file(name):
    return os.path.join(FIX, "images", os.path.basename(images[name]["file"]))


def generate(args, timeout=120):
    cmd = [VRWKV, "client", "--addr", ADDR, "--api-key", KEY, "--json"] + list(args)
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"client timed out after {timeout} s"
    if p.returncode != 0:
        return None, p.stderr.decode(errors="replace").strip()
    try:
        return json.loads(p.stdout), ""
    except ValueError:
        return None, f"not JSON: {p.stdout[:200]!r}"


def case_args(case, mode, max_tokens=12):
    q = prompts["prompts"][case["prompt_id"]]["question"]
    return ["--image", image_file(case["image"]), "--image-position", case["image_position"], "--scan", mode,
            "--max-tokens", str(max_tokens), q]


def main():
    model = os.path.join(FIX, "tiny", "model.pth")
    engine = ["--model", model, "--config", os.path.join(FIX, "tiny", "model.json"),
              "--vocab", os.path.join(SHARED, "rwkv_vocab_v20230424.txt")]
    log = open(os.environ.get("VRWKV_SERVICE_LOG", os.devnull), "ab")
    srv = subprocess.Popen([VRWKV, "serve"] + engine + ["--backend", BACKEND, "--shards", "2", "--port", str(PORT),
                                                        "--api-key", KEY], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            p = subprocess.run([VRWKV, "client", "--addr", ADDR, "--health"], capture_output=True, timeout=30)
            if p.returncode == 0 and p.stdout.strip() == b"SERVING":
                break
            if srv.poll() is not None:
                check(False, f"vrwkv serve --backend {BACKEND} exited with {srv.returncode}")
                return
            time.sleep(0.5)
        else:
            check(False, "vrwkv serve did not become SERVING within 90 s")
            return
        # forward cases x scan modes
        for case in fw["cases"]:
            for mode in ("uni", "bi", "multi"):
                what = f"forward {case['id']} {mode}"
                r, err = generate(case_args(case, mode))
                if not check(r is not None, f"{what}: {err}"):
                    continue
                want, complete = expected_run(case["modes"][mode]["greedy"], 12)
                check(r["prompt_tokens"] == case["input_ids"], f"{what}: prompt tokens differ from the fixture")
                check(tokens_match(r["tokens"], want, complete), f"{what}: tokens {r['tokens']}, fixture {want}")
        # two turns of a session
        for tcase in mt["cases"]:
            base = CASES[tcase["base_case"]]
            for mode in ("uni", "bi"):
                what = f"multiturn {tcase['id']} {mode}"
                r1, err = generate(["--new-session"] + case_args(base, mode))
                if not check(r1 is not None and r1.get("session"), f"{what} turn 1: {err}"):
                    continue
                check(r1["tokens"] == tcase["modes"][mode]["answer_tokens_used"], f"{what} turn 1: {r1['tokens']}")
                r2, err = generate(["--session", r1["session"], "--max-tokens", "8", prompts["followup_question"]])
                if not check(r2 is not None, f"{what} turn 2: {err}"):
                    continue
                want, complete = expected_run(tcase["modes"][mode]["greedy"], 8)
                check(r2["prompt_tokens"] == tcase["turn2_ids"], f"{what} turn 2: prompt tokens differ")
                check(tokens_match(r2["tokens"], want, complete), f"{what} turn 2: {r2['tokens']}, fixture {want}")
        # concurrency: 16 requests at once (prefills and decodes batched on the shards) each give
        # the fixture's tokens, as they do alone (cuBLAS may sum a batch's rows in another order
        # than a lone row's, so only the fixture's robust prefix is compared)
        combos = [(fw["cases"][i % len(fw["cases"])], ("uni", "bi", "multi")[i % 3]) for i in range(16)]
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            together = list(ex.map(lambda cm: generate(case_args(cm[0], cm[1], 12)), combos))
        for i, ((case, mode), (r, err)) in enumerate(zip(combos, together)):
            what = f"concurrent #{i} {case['id']} {mode}"
            if not check(r is not None, f"{what}: {err}"):
                continue
            want, complete = expected_run(case["modes"][mode]["greedy"], 12)
            check(tokens_match(r["tokens"], want, complete), f"{what}: tokens {r['tokens']}, fixture {want}")
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        check(srv.returncode in (0, -signal.SIGTERM), f"vrwkv serve ended with status {srv.returncode}")


main()
print(f"{'ok  ' if not failures else 'FAIL'} service on {BACKEND}: {checks - len(failures)} of {checks} checks passed")
sys.exit(1 if failures else 0)

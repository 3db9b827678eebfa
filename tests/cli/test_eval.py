#!/usr/bin/env python3
"""tests/cli/test_eval.py — `vrwkv eval` and `vrwkv score` as users call them: answers of the
tiny fixture model in-process equal `vrwkv run` question by question (text, prompt, line
format), a run killed halfway then --resume'd equals an uninterrupted run, the cluster
(`vrwkv serve`, --addr) writes the same bytes as in-process, bad lines and unreadable images
are reported and skipped, every answer file of the eval fixtures is reproduced byte for byte
by the C line writer (--check-answers), and `vrwkv score` prints what the upstream scorers
printed. Usage: test_eval.py VRWKV SHARED_DIR"""
import ast, json, os, shutil, signal, socket, subprocess, sys, tempfile, time

VRWKV, SHARED = sys.argv[1], sys.argv[2]
FIX = os.path.join(SHARED, "fixtures")
EFX = os.path.join(SHARED, "eval-fixtures")
if not os.path.exists(os.path.join(FIX, "README.md")) or not os.path.exists(os.path.join(EFX, "README.md")):
    print(f"SKIP: {SHARED} has no fixtures/eval-fixtures; the eval tests cannot run", file=sys.stderr)
    sys.exit(77)
VOCAB = os.path.join(SHARED, "rwkv_vocab_v20230424.txt")
MODEL = os.path.join(FIX, "tiny", "model.pth")
CONFIG = os.path.join(FIX, "tiny", "model.json")
ENGINE = ["--model", MODEL, "--config", CONFIG, "--vocab", VOCAB]
VQA = os.path.join(EFX, "vqav2", "input", "eval", "vqav2")
VQA_Q = os.path.join(VQA, "visualrwkv_vqav2_mscoco_val2014.jsonl")
VQA_IMAGES = os.path.join(VQA, "val2014")
failures, checks = [], 0
# many vrwkv processes share the CPUs here (the server and its clients): no OpenMP spin-waiting
os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)
    return cond


def run(args, ok=True, timeout=600):
    p = subprocess.run([VRWKV] + args, capture_output=True, timeout=timeout)
    if ok and p.returncode != 0:
        raise AssertionError(f"vrwkv {' '.join(args)} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def load_vocab():
    tok = {}
    with open(VOCAB, encoding="utf-8") as f:
        for line in f:
            i, rest = line.split(" ", 1)
            v = ast.literal_eval(rest[: rest.rindex(" ")])
            tok[int(i)] = v.encode("utf-8") if isinstance(v, str) else v
    return tok


def upstream_text(vocab, tokens):
    b = b"".join(vocab[t] for t in tokens)
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        s = "\ufffd"
    return s.split("\n\n")[0].strip()


def eval_args(questions, out, *extra):
    return ["eval", "--questions", questions, "--dataset", "default", "--out", out, "--quiet", "--model-id", "tiny"] + list(extra)


tmp = tempfile.mkdtemp(prefix="vrwkv-eval-test-")
try:
    vocab = load_vocab()
    questions = [json.loads(l) for l in open(VQA_Q, encoding="utf-8")]

    # ---- in-process answers equal `vrwkv run` (image first: every question; middle: some)
    cases = json.load(open(os.path.join(EFX, "prompt_cases.json"), encoding="utf-8"))["cases"]
    for pos, subset in (("first", questions), ("middle", questions[:6])):
        qfile = os.path.join(tmp, f"q_{pos}.jsonl")
        with open(qfile, "w", encoding="utf-8") as f:
            for q in subset:
                f.write(json.dumps(q, ensure_ascii=False) + "\n")
        out = os.path.join(tmp, f"a_{pos}.jsonl")
        run(eval_args(qfile, out, "--images", VQA_IMAGES, "--image-position", pos) + ENGINE)
        lines = read(out).decode("utf-8").splitlines()
        check(len(lines) == len(subset), f"{pos}: {len(lines)} answer lines for {len(subset)} questions")
        for q, line in zip(subset, lines):
            a = json.loads(line)
            what = f"{pos} question {q['question_id']}"
            check(list(a) == ["question_id", "prompt", "text", "avg_logit", "avg_prob", "model_id", "metadata"],
                  f"{what}: keys {list(a)}")
            check(line == json.dumps(a, ensure_ascii=False), f"{what}: the line is not json.dumps(ensure_ascii=False)")
            check(a["question_id"] == q["question_id"] and a["metadata"] == {"image_file": q["image"]},
                  f"{what}: id/metadata {a['question_id']} {a['metadata']}")
            check(a["model_id"] == "tiny", f"{what}: model_id {a['model_id']}")
            for k in ("avg_logit", "avg_prob"):
                check(a[k] == str(round(float(a[k]), 3)), f"{what}: {k} {a[k]!r} is not str(round(x, 3))")
            r = json.loads(run(["run"] + ENGINE + ["--image", os.path.join(VQA_IMAGES, q["image"]), "--image-position",
                                                 pos, "--max-tokens", "128", "--json", "--prompt", q["text"]]).stdout)
            want = upstream_text(vocab, r["tokens"] + ([261] if r["finish_reason"] == "stop" else []))
            check(a["text"] == want, f"{what}: text {a['text']!r}, vrwkv run gives {want!r}")
            for c in cases:
                if c.get("raw_line", "").strip() == json.dumps(q, ensure_ascii=False) and c.get("image_position") == pos:
                    check(a["prompt"] == c["prompt"], f"{what}: prompt {a['prompt']!r}, fixture {c['prompt']!r}")

    # ---- bad lines and images are reported and skipped; a line without image uses a zero image
    mixed = os.path.join(tmp, "mixed.jsonl")
    with open(mixed, "w", encoding="utf-8") as f:
        f.write(json.dumps(questions[0]) + "\n")
        f.write("{not json\n")
        f.write(json.dumps(dict(questions[1], image="missing.jpg")) + "\n")
        f.write(json.dumps({"question_id": "noimg-1", "text": "What is this?"}) + "\n")
        f.write(json.dumps(questions[2]) + "\n")
    out_mixed = os.path.join(tmp, "a_mixed.jsonl")
    p = run(eval_args(mixed, out_mixed, "--images", VQA_IMAGES) + ENGINE)
    err = p.stderr.decode(errors="replace")
    ids = [json.loads(l)["question_id"] for l in read(out_mixed).decode().splitlines()]
    check(ids == [questions[0]["question_id"], "noimg-1", questions[2]["question_id"]], f"mixed: answered ids {ids}")
    check(f"question {questions[1]['question_id']}" in err and "missing.jpg" in err, f"mixed: no report of the missing image: {err}")
    check(":2:" in err, f"mixed: no report of the bad line 2: {err}")

    # ---- killed halfway, then --resume: the same file as an uninterrupted run
    many = os.path.join(tmp, "many.jsonl")
    with open(many, "w", encoding="utf-8") as f:
        for k in range(4):
            for q in questions:
                f.write(json.dumps(dict(q, question_id=q["question_id"] * 10 + k)) + "\n")
    full = os.path.join(tmp, "full.jsonl")
    run(eval_args(many, full, "--images", VQA_IMAGES, "--concurrency", "4") + ENGINE)
    part = os.path.join(tmp, "part.jsonl")
    proc = subprocess.Popen([VRWKV] + eval_args(many, part, "--images", VQA_IMAGES, "--concurrency", "1") + ENGINE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(part) and read(part).count(b"\n") >= 40:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = read(part).count(b"\n")
    check(0 < n_before < 144, f"resume: the killed run wrote {n_before} lines (wanted some, not all)")
    run(eval_args(many, part, "--images", VQA_IMAGES, "--resume") + ENGINE)
    check(read(part) == read(full), "resume: the resumed file differs from an uninterrupted run")
    # a last line cut in the middle (a crash while writing) is dropped and answered again
    data = read(full)
    cut = data[: data.index(b"\n", len(data) // 2) + 30]
    with open(part, "wb") as f:
        f.write(cut)
    run(eval_args(many, part, "--images", VQA_IMAGES, "--resume") + ENGINE)
    check(read(part) == read(full), "resume: after a truncated last line the file differs from an uninterrupted run")
    # chunks concatenated in order = the whole file
    chunks = b""
    for k in range(3):
        cf = os.path.join(tmp, f"chunk{k}.jsonl")
        run(eval_args(many, cf, "--images", VQA_IMAGES, "--num-chunks", "3", "--chunk-idx", str(k)) + ENGINE)
        chunks += read(cf)
    check(chunks == read(full), "chunks: 3 chunks concatenated differ from the whole run")

    # ---- the cluster: same bytes as in-process
    if "serve" in run(["--help"], ok=False).stderr.decode():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        key = "vrwkv-eval-test-key"
        # the features go from the vision worker straight to stage 0; then, with --inline-features,
        # back through the coordinator as before: the answers are the same bytes both ways
        for inline in (False, True):
            srv = subprocess.Popen([VRWKV, "serve"] + ENGINE + ["--port", str(port), "--api-key", key] +
                                   (["--inline-features"] if inline else []),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                addr = ["--addr", f"127.0.0.1:{port}", "--api-key", key]
                for name, qf, extra in (("first", os.path.join(tmp, "q_first.jsonl"), []),
                                        ("middle", os.path.join(tmp, "q_middle.jsonl"), ["--image-position", "middle"]),
                                        ("mixed", mixed, [])):
                    if inline and name != "first":
                        continue
                    out = os.path.join(tmp, f"c_{name}.jsonl")
                    run(eval_args(qf, out, "--images", VQA_IMAGES, "--concurrency", "16", *extra) + addr)
                    ref = os.path.join(tmp, f"a_{name}.jsonl")
                    check(read(out) == read(ref), f"cluster {name}{' (inline features)' if inline else ''}: "
                                                  "the answers differ from in-process")
            finally:
                srv.send_signal(signal.SIGTERM)
                try:
                    srv.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    srv.kill()
                    srv.wait()
    else:
        print("note: vrwkv built without the service; the cluster checks are skipped", file=sys.stderr)

    # ---- the line writer reproduces every answer line of the fixtures byte for byte
    for root, _, files in os.walk(EFX):
        for fn in files:
            path = os.path.join(root, fn)
            if not fn.endswith(".jsonl") or "/input/" not in path or "/answers/" not in path:
                continue
            good = os.path.join(tmp, "good.jsonl")
            with open(path, "rb") as f, open(good, "wb") as g:
                for line in f:  # the fixtures' deliberately broken lines are not answer lines
                    try:
                        json.loads(line)
                    except ValueError:
                        continue
                    g.write(line)
            p = run(["eval", "--check-answers", good], ok=False)
            check(p.returncode == 0, f"{path}: lines not reproduced: {p.stderr.decode(errors='replace')[:600]}")

    # ---- vrwkv score against the upstream stdout
    help_text = run(["score", "--help"], ok=False).stderr.decode()

    def score(bench, dataset, extra, want_stdout, mask=None):
        if f"  {dataset} " not in help_text:
            print(f"note: vrwkv score --dataset {dataset} is not built; skipped", file=sys.stderr)
            return
        d = os.path.join(tmp, f"score_{bench}_{dataset}")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.join(EFX, bench, "input"), d)
        exp = json.load(open(os.path.join(EFX, bench, "expected.json"), encoding="utf-8"))
        args = ["score", "--dataset", dataset, "--eval-dir", d, "--exp-name", exp["exp_name"]]
        args += [a.replace("$eval_dir", d) for a in extra]
        p = run(args, ok=False)
        got = p.stdout.decode("utf-8", errors="replace")
        if mask:
            got, want_stdout = mask(got), mask(want_stdout)
        check(p.returncode == 0 and got == want_stdout,
              f"score {dataset}: rc {p.returncode}, stdout {got!r}, upstream {want_stdout!r}, "
              f"stderr {p.stderr.decode(errors='replace')[:300]}")

    def arg_after(argv, flag):
        return argv[argv.index(flag) + 1]

    import re
    e = json.load(open(os.path.join(EFX, "vqav2", "expected.json"), encoding="utf-8"))
    if "command" in e.get("val", {}):
        c = e["val"]["command"]
        score("vqav2", "vqav2", ["--answers", arg_after(c["argv"], "--result-file")] if "--result-file" in c["argv"] else [],
              c["stdout"], mask=lambda s: re.sub(r"DONE \(t=[^)]*\)", "DONE (t=)", s))
    c = e["test_dev"]["command"]
    score("vqav2", "vqav2_testdev", ["--split", arg_after(c["argv"], "--split")], c["stdout"])
    e = json.load(open(os.path.join(EFX, "gqa", "expected.json"), encoding="utf-8"))
    c = e["commands"][-1] if isinstance(e["commands"], list) else list(e["commands"].values())[-1]
    score("gqa", "gqa", [], c["stdout"])
    e = json.load(open(os.path.join(EFX, "scienceqa", "expected.json"), encoding="utf-8"))
    # the fixture lacks one answer: upstream scores it FAILED, vrwkv only when asked to
    score("scienceqa", "sqa", ["--answers", arg_after(e["command"]["argv"], "--result-file"), "--allow-missing"],
          e["command"]["stdout"])
    e = json.load(open(os.path.join(EFX, "textvqa", "expected.json"), encoding="utf-8"))
    for pos, c in e["commands"].items():
        score("textvqa", "textvqa", ["--answers", arg_after(c["argv"], "--result-file")], c["stdout"])
    e = json.load(open(os.path.join(EFX, "mme", "expected.json"), encoding="utf-8"))
    score("mme", "mme", [], e["stdout_official_format"])
    for bench in ("mmbench", "mmbench_cn"):
        e = json.load(open(os.path.join(EFX, bench, "expected.json"), encoding="utf-8"))
        score(bench, bench, [], e["command"]["stdout"])
        table = os.path.join(tmp, f"score_{bench}_{bench}", os.path.dirname(e["upload_file"]),
                             e["exp_name"] + "_upload_table.json")
        if f"  {bench} " in help_text and check(os.path.exists(table), f"score {bench}: no {table}"):
            check(json.load(open(table, encoding="utf-8")) == e["upload_table"], f"score {bench}: upload table differs")
    if "  pope " in help_text:  # one answer is missing: named, non-zero exit (upstream misaligns)
        e = json.load(open(os.path.join(EFX, "pope", "expected.json"), encoding="utf-8"))
        d = os.path.join(tmp, "score_pope")
        shutil.copytree(os.path.join(EFX, "pope", "input"), d)
        p = run(["score", "--dataset", "pope", "--eval-dir", d, "--exp-name", e["exp_name"]], ok=False)
        check(p.returncode != 0 and str(e["missing_answer_question_id"]) in p.stderr.decode(errors="replace"),
              f"score pope: rc {p.returncode}, stderr {p.stderr.decode(errors='replace')[:300]}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)

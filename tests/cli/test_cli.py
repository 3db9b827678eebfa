#!/usr/bin/env python3
"""tests/cli/test_cli.py — the `vrwkv` command against the fixtures, as users call it:
every forward case x scan mode through `vrwkv run --json` from the real image files, the
multi-turn cases through --followup, tokenizer, preprocess and encode-image, and the error
paths (one line on stderr, non-zero exit). Usage: test_cli.py VRWKV SHARED_DIR"""
import json, os, struct, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from fixture_turns import expected_run  # noqa: E402

VRWKV, SHARED = sys.argv[1], sys.argv[2]
FIX = os.path.join(SHARED, "fixtures")
if not os.path.exists(os.path.join(FIX, "README.md")):
    print(f"SKIP: {FIX} not found; the CLI fixture tests cannot run", file=sys.stderr)
    sys.exit(77)
VOCAB = os.path.join(SHARED, "rwkv_vocab_v20230424.txt")
failures, checks = [], 0


def run(args, ok=True):
    p = subprocess.run([VRWKV] + args, capture_output=True, timeout=600)
    if ok and p.returncode != 0:
        raise AssertionError(f"vrwkv {' '.join(args)} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return p


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def load(rel):
    with open(os.path.join(FIX, rel), encoding="utf-8") as f:
        return json.load(f)


def f32(path):
    with open(path, "rb") as f:
        b = f.read()
    return struct.unpack(f"<{len(b)//4}f", b)


images = load("images/images.json")["images"] if "images" in load("images/images.json") else load("images/images.json")
prompts = load("prompts.json")


def image_file(name):
    meta = images[name] if isinstance(images, dict) else next(i for i in images if i.get("image") == name)
    return os.path.join(FIX, "images", os.path.basename(meta["file"]))


def compare_tokens(got, want, complete, what):
    if complete is None:  # fragile step: compare the prefix
        check(got[: len(want)] == want, f"{what}: tokens {got} do not start with {want}")
    else:
        check(got == want, f"{what}: tokens {got}, fixture {want}")


for model_set in ("tiny", "grid"):
    model = os.path.join(FIX, model_set, "model.pth")
    config = os.path.join(FIX, model_set, "model.json")
    base = ["run", "--model", model, "--config", config, "--vocab", VOCAB]
    fw = load(f"{model_set}/forward.json")
    for case in fw["cases"]:
        prompt = prompts["prompts"][case["prompt_id"]]
        for mode in ("uni", "bi", "multi"):
            with tempfile.TemporaryDirectory() as tmp:
                dump = os.path.join(tmp, "logits.f32")
                p = run(base + ["--image", image_file(case["image"]), "--prompt", prompt["question"],
                                "--image-position", case["image_position"], "--scan", mode,
                                "--max-tokens", "12", "--json", "--dump-logits", dump])
                out = json.loads(p.stdout)
                what = f"{model_set} {case['id']} {mode}"
                check(out["prompt_tokens"] == case["input_ids"], f"{what}: prompt tokens differ")
                want, complete = expected_run(fw_mode := case["modes"][mode]["greedy"], 12)
                compare_tokens(out["tokens"], want, complete, what)
                check(out["turns"] == [], f"{what}: unexpected turns")
                logits = f32(dump)
                ref = f32(os.path.join(FIX, case["modes"][mode]["last_logits"]["file"]))
                d = max(abs(a - b) for a, b in zip(logits, ref))
                # from the real image file: JPEG decoders differ by a few levels (README §6, §11)
                check(len(logits) == 65536 and d < 5e-2, f"{what}: dumped logits differ by {d}")
    mt = load(f"{model_set}/multiturn.json")
    for case in mt["cases"]:
        base_case = next(c for c in fw["cases"] if c["id"] == case["base_case"])
        prompt = prompts["prompts"][base_case["prompt_id"]]
        for mode in ("uni", "bi", "multi"):
            m = case["modes"][mode]
            p = run(base + ["--image", image_file(case["image"]), "--prompt", prompt["question"],
                            "--image-position", case["image_position"], "--scan", mode, "--max-tokens", "12",
                            "--followup", prompts["followup_question"], "--json"])
            out = json.loads(p.stdout)
            what = f"{model_set} {case['id']} {mode}"
            check(out["tokens"] == m["answer_tokens_used"], f"{what}: turn 1 tokens {out['tokens']}")
            check(len(out["turns"]) == 1, f"{what}: expected one follow-up turn")
            t2 = out["turns"][0]
            check(t2["prompt_tokens"] == case["turn2_ids"], f"{what}: turn 2 prompt tokens differ")
            want, complete = expected_run(m["greedy"], 8)
            got = t2["tokens"][: len(want)] if complete is False else t2["tokens"]
            compare_tokens(got, want, complete, what + " turn 2")

# tokenizer through the CLI
tok = load("tokenizer.json")
for case in tok["encode"][:20]:
    if "\0" in case["text"]:
        continue
    p = run(["tokenize", "--vocab", VOCAB, "--", case["text"]])
    check(json.loads(p.stdout) == case["ids"], f"tokenize {case['text']!r}")
p = run(["tokenize", "--vocab", VOCAB, "--decode", "24281", "59", "33"])
check(p.stdout == b"User: \n", f"decode gave {p.stdout!r}")

# preprocess and encode-image
pre = load("tiny/preprocess.json")
vis = load("tiny/vision.json")
with tempfile.TemporaryDirectory() as tmp:
    for name in ("img1", "img2"):  # PNG: exact decode
        out = os.path.join(tmp, "px.f32")
        run(["preprocess", "--image", image_file(name), "--size", "56", "--out", out])
        got, ref = f32(out), f32(os.path.join(FIX, pre["images"][name]["pixel_values"]["file"]))
        check(max(abs(a - b) for a, b in zip(got, ref)) <= 1e-6 and len(got) == len(ref), f"preprocess {name}")
        run(["encode-image", "--model", os.path.join(FIX, "tiny/model.pth"), "--config",
             os.path.join(FIX, "tiny/model.json"), "--image", image_file(name), "--out", out])
        got, ref = f32(out), f32(os.path.join(FIX, vis["images"][name]["image_features"]["file"]))
        check(len(got) == len(ref) and max(abs(a - b) for a, b in zip(got, ref)) <= 1e-4, f"encode-image {name}")

    # errors: one line naming the problem, non-zero exit, nothing on stdout
    bad_img = os.path.join(tmp, "bad.jpg")
    with open(bad_img, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0garbage")
    tiny = ["--model", os.path.join(FIX, "tiny/model.pth"), "--config", os.path.join(FIX, "tiny/model.json"),
            "--vocab", VOCAB]
    for args, needle in [
        (["run"] + tiny, "--prompt"),
        (["run", "--vocab", VOCAB, "--prompt", "x"], "--model"),
        (["run"] + tiny + ["--prompt", "x", "--scan", "sideways"], "sideways"),
        (["run"] + tiny + ["--prompt", "x", "--max-tokens", "zero"], "max-tokens"),
        (["run"] + tiny + ["--prompt", "x", "--bogus"], "bogus"),
        (["run"] + tiny + ["--prompt", "x", "--image", bad_img], "bad.jpg"),
        (["run"] + tiny + ["--prompt", "x", "--image", os.path.join(tmp, "missing.png")], "missing.png"),
        (["run", "--model", os.path.join(tmp, "nope.pth"), "--vocab", VOCAB, "--prompt", "x"], "nope.pth"),
        (["run", "--model", VOCAB, "--vocab", VOCAB, "--prompt", "x"], "rwkv_vocab"),
        (["run"] + tiny + ["--prompt", "see <image> here"], "<image>"),
        (["tokenize", "--vocab", os.path.join(tmp, "missing.txt"), "x"], "missing.txt"),
        (["frobnicate"], "frobnicate"),
        (["worker", "--role", "shard", "--layers", "0:2", "--coordinator", "127.0.0.1:1", "--model",
          os.path.join(FIX, "tiny/model.pth"), "--config", os.path.join(FIX, "tiny/model.json"), "--transport", "nccl"],
         "--backend cuda"),
        (["worker", "--role", "shard", "--layers", "0:2", "--coordinator", "127.0.0.1:1", "--model",
          os.path.join(FIX, "tiny/model.pth"), "--transport", "pigeon"], "pigeon"),
        (["worker", "--role", "vision", "--coordinator", "127.0.0.1:1", "--model",
          os.path.join(FIX, "tiny/model.pth"), "--transport", "nccl"], "--backend cuda"),
        (["worker", "--role", "vision", "--coordinator", "127.0.0.1:1", "--model",
          os.path.join(FIX, "tiny/model.pth"), "--transport", "pigeon"], "pigeon"),
        (["serve", "--model", os.path.join(FIX, "tiny/model.pth"), "--vocab", VOCAB, "--backend", "tpu"], "tpu"),
    ]:
        p = run(args, ok=False)
        err = p.stderr.decode(errors="replace").strip()
        check(p.returncode != 0, f"{args}: exit 0")
        check(needle in err and p.stdout == b"", f"{args}: stderr {err!r} lacks {needle!r}")

# chat: two turns from stdin in one dialogue equal run --followup
chat_in = f"{prompts['prompts']['q0_first']['question']}\n{prompts['followup_question']}\n\n"
tiny = ["--model", os.path.join(FIX, "tiny/model.pth"), "--config", os.path.join(FIX, "tiny/model.json"),
        "--vocab", VOCAB]
p = subprocess.run([VRWKV, "chat"] + tiny + ["--image", image_file("img0"), "--image-position", "first",
                    "--max-tokens", "8"], input=chat_in.encode(), capture_output=True, timeout=120)
r = json.loads(run(["run"] + tiny + ["--image", image_file("img0"), "--image-position", "first", "--max-tokens", "8",
                    "--prompt", prompts['prompts']['q0_first']['question'], "--followup",
                    prompts["followup_question"], "--json"]).stdout)
answers = [line.split("Assistant:", 1)[1] for line in p.stdout.decode(errors="replace").split("User: ") if "Assistant:" in line]
check(p.returncode == 0 and len(answers) == 2, f"chat: {p.returncode} {p.stderr!r}")
if len(answers) == 2:
    check(answers[0].strip() == r["text"].strip() and answers[1].strip() == r["turns"][0]["text"].strip(),
          f"chat answers {answers} differ from run --followup")

# mkmodel + run + bench on random weights of the tiny shape, checkpoint in both formats
with tempfile.TemporaryDirectory() as tmp:
    for name in ("m.pth", "m.safetensors"):
        path = os.path.join(tmp, name)
        run(["mkmodel", "--shape", "tiny", "--out", path, "--seed", "3"])
        out = json.loads(run(["run", "--model", path, "--vocab", VOCAB, "--image", image_file("img1"),
                              "--prompt", "Hi", "--max-tokens", "5", "--json"]).stdout)
        check(0 < len(out["tokens"]) <= 5, f"mkmodel {name}: no tokens")
    p = run(["bench", "--model", os.path.join(tmp, "m.pth"), "--vocab", VOCAB, "--prefill-tokens", "16",
             "--decode-steps", "2"])
    text = p.stdout.decode()
    for needle in ("prefill:", "decode batch 1:", "decode batch 8:", "tokenizer:", "image encode"):
        check(needle in text, f"bench output lacks {needle!r}: {text}")
    p = run(["mkmodel", "--shape", "huge", "--out", os.path.join(tmp, "x.pth")], ok=False)
    check(p.returncode != 0 and b"huge" in p.stderr, "mkmodel with an unknown shape")

print(f"{checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)

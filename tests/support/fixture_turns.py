"""tests/support/fixture_turns.py — what a turn served by vrwkv must answer for a fixture case,
shared by the Python tests (tests/cli, tests/cluster, tests/gpu/service_cases.py). A
fixture's greedy steps say where the upstream choice was fragile (a near-tie): past that step
either token is right, so a turn is compared only up to it."""


def expected_run(greedy, max_tokens):
    """Fixture greedy tokens as a turn returns them: up to the first 261, at most max_tokens, and
    only up to the first fragile step (after it either choice is right; complete = None)."""
    out = []
    for s in greedy["steps"][:max_tokens]:
        if s["token"] == 261:
            return out, True
        out.append(s["token"])
        if s["fragile"]:
            return out, None
    return out, False


def tokens_match(got, want, complete):
    return got[: len(want)] == want if complete is None else got == want

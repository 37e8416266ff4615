"""Review building blocks against real SQLite: votes and battles, the assignment
policy, agreement statistics, password hashing and safe rendering."""

from __future__ import annotations

import itertools
import math
import random
import sqlite3
from pathlib import Path

import pytest
from helpers import add_account, seed_run

from harness.errors import InputError
from harness.store import Store
from harness.store.review import CampaignRecord, ItemRecord, VoteConflictError, VoteRecord
from review_ui.agreement import fleiss_kappa, krippendorff_alpha, majority
from review_ui.assign import CampaignState, choose_item
from review_ui.auth import check_new_password, hash_password, needs_rehash, verify_password
from review_ui.campaigns import CampaignSpec, create_campaign, read_gold
from review_ui.render import markdown_html
from review_ui.reports import campaign_report, export_rows, leaderboard, to_csv
from review_ui.service import ConflictError, ReviewService

PROMPTS = [f"What is {i} + {i}?" for i in range(6)]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "review.db"
    with Store(path) as store:
        seed_run(store, "alpha", PROMPTS, lambda i, _: f"{2 * i}")
        seed_run(store, "beta", PROMPTS, lambda i, _: f"It is {2 * i + (i % 2)}.")
        seed_run(store, "gamma", PROMPTS, lambda i, _: "I cannot answer that.")
        for name in ("ann", "bob", "cat", "dan"):
            add_account(store, name, "password-" + name)
    return path


def _battles(path: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT model_a, model_b, outcome, ref FROM battles "
                            "WHERE source='human' ORDER BY id").fetchall()


# -- campaigns ------------------------------------------------------------------------
def test_pairwise_campaign_copies_outputs_from_stored_runs(db: Path) -> None:
    with Store(db) as store:
        record, n = create_campaign(store, CampaignSpec(name="c", suite="smoke",
                                                        models=("alpha", "beta")))
        items = store.campaign_items(record.id)
    # sample 0: alpha "0" vs beta "It is 0." differ; every sample differs
    assert n == len(PROMPTS) == len(items)
    assert {(i.model_a, i.model_b) for i in items} == {("alpha", "beta")}
    assert items[1].prompt == PROMPTS[1] and items[1].output_b == "It is 3."
    assert record.config["runs"].keys() == {"alpha", "beta"}


def test_all_models_make_every_pair_and_single_makes_one_item_per_output(db: Path) -> None:
    with Store(db) as store:
        _, pairs = create_campaign(store, CampaignSpec(name="all", suite="smoke"))
        _, singles = create_campaign(store, CampaignSpec(name="one", suite="smoke",
                                                         kind="single"))
    assert pairs == 3 * len(PROMPTS) and singles == 3 * len(PROMPTS)


@pytest.mark.parametrize(("spec", "message"), [
    (CampaignSpec(name="x", suite="nope"), "no completed run"),
    (CampaignSpec(name="x", suite="smoke", models=("alpha", "zeta")), "zeta"),
    (CampaignSpec(name="x", suite="smoke", models=("alpha",)), "needs 2 models"),
    (CampaignSpec(name="x", suite="smoke", kind="ranking"), "--kind"),
    (CampaignSpec(name="x", suite="smoke", votes_per_item=0), "at least 1"),
    (CampaignSpec(name="123", suite="smoke"), "not all digits"),
])
def test_bad_campaign_specs_write_nothing(db: Path, spec: CampaignSpec, message: str) -> None:
    with Store(db) as store:
        with pytest.raises(InputError, match=message):
            create_campaign(store, spec)
        assert store.campaigns() == []


def test_identical_pairs_are_skipped_unless_kept(tmp_path: Path) -> None:
    with Store(tmp_path / "same.db") as store:
        seed_run(store, "m1", PROMPTS, lambda i, _: "same")
        seed_run(store, "m2", PROMPTS, lambda i, _: "same" if i else "different")
        _, n = create_campaign(store, CampaignSpec(name="a", suite="smoke"))
        _, kept = create_campaign(store, CampaignSpec(name="b", suite="smoke",
                                                      keep_identical=True))
    assert (n, kept) == (1, len(PROMPTS))


def test_gold_answers_mark_items(db: Path, tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"sample_id": "q0", "answer": "alpha"}\n{"sample_id": "q1", '
                    '"answer": "tie"}\n')
    with Store(db) as store:
        record, _ = create_campaign(store, CampaignSpec(
            name="g", suite="smoke", models=("beta", "alpha"), gold=read_gold(gold)))
        golds = {i.sample_id: i.gold for i in store.campaign_items(record.id) if i.gold}
    assert golds == {"q0": "b", "q1": "tie"}  # alpha is model_b of the (beta, alpha) pair
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "q0", "answer": "nobody"}\n')
    with Store(db) as store, pytest.raises(InputError, match="line 1"):
        create_campaign(store, CampaignSpec(name="h", suite="smoke", gold=read_gold(bad)))


# -- votes, undo and battles -----------------------------------------------------------
def test_vote_writes_one_battle_in_shown_order_and_undo_removes_it(db: Path) -> None:
    with Store(db) as store:
        record, _ = create_campaign(store, CampaignSpec(name="c", suite="smoke",
                                                        models=("alpha", "beta")))
        item = store.campaign_items(record.id)[0]
        vote = store.add_vote(item, "ann", "a", left_is_a=False, category="smoke")
        # beta was shown on the left, so the battle is (beta, alpha) and alpha (b) won
        assert _battles(db) == [("beta", "alpha", "b", str(vote.id))]
        with pytest.raises(VoteConflictError):
            store.add_vote(item, "ann", "b", left_is_a=True)
        undo = store.undo_vote(vote)
        assert undo.supersedes == vote.id and _battles(db) == []
        with pytest.raises(VoteConflictError):
            store.undo_vote(vote)
        again = store.add_vote(item, "ann", "both_bad", left_is_a=True, category="smoke")
        assert _battles(db) == [("alpha", "beta", "tie_bad", str(again.id))]
        outcomes = [v.outcome for v in store.campaign_votes(record.id)]
    assert outcomes == ["a", "undo", "both_bad"]  # append-only history


def test_service_flow_reveals_names_only_after_the_vote(db: Path) -> None:
    with Store(db) as store:
        record, _ = create_campaign(store, CampaignSpec(name="c", suite="smoke",
                                                        models=("alpha", "beta")))
    service = ReviewService(db, seed=1)
    try:
        view = service.next_item("ann", record.id)
        assert view is not None and "alpha" not in str(view) and "beta" not in str(view)
        assert service.next_item("ann", record.id) == view  # reload: same item, same sides
        with pytest.raises(ConflictError):
            service.vote("bob", record.id, view["item_id"], choice="a")  # not bob's item
        result = service.vote("ann", record.id, view["item_id"], choice="a")
        assert set(result["reveal"].values()) == {"alpha", "beta"}
        with pytest.raises(ConflictError):
            service.vote("ann", record.id, view["item_id"], choice="b")
        undone = service.undo("ann", record.id)
        assert undone["item"]["item_id"] == view["item_id"]
        assert undone["item"]["a"] == view["a"]  # same sides as first shown
        service.skip("ann", record.id, view["item_id"])
        with pytest.raises(ConflictError):
            service.undo("bob", record.id)
    finally:
        service.close()


def test_undo_window_is_enforced(db: Path) -> None:
    with Store(db) as store:
        record, _ = create_campaign(store, CampaignSpec(name="c", suite="smoke"))
    service = ReviewService(db, undo_window_s=0.0)
    try:
        view = service.next_item("ann", record.id)
        assert view is not None
        service.vote("ann", record.id, view["item_id"], choice="tie")
        with pytest.raises(ConflictError, match="nothing to undo"):
            service.undo("ann", record.id)
    finally:
        service.close()


# -- assignment policy ----------------------------------------------------------------
def _state(n_samples: int, models: list[str], target: int = 2,
           config: dict | None = None, gold: dict[int, str] | None = None) -> CampaignState:
    items = []
    for s in range(n_samples):
        for a, b in itertools.combinations(models, 2):
            item_id = len(items) + 1
            items.append(ItemRecord(item_id, 1, f"q{s}", "p", a, "x", b, "y",
                                    (gold or {}).get(item_id), target))
    campaign = CampaignRecord(1, "c", "pairwise", "smoke", config or {}, "t")
    return CampaignState.build(campaign, items, [])


def _answer(state: CampaignState, who: str, item_id: int, outcome: str, vote_id: int) -> None:
    state.hold(who, item_id, True, 0.0)
    state.apply(VoteRecord(vote_id, 1, item_id, who, outcome, True, None, (), None, 1.0, "t"))
    state.release(who)


def test_no_annotator_sees_an_item_twice_and_items_stop_at_target() -> None:
    state = _state(5, ["m1", "m2"], target=2)
    rng = random.Random(0)
    served: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    vote_id = 0
    for _ in range(20):
        for who in served:
            item = choose_item(state, who, 0.0, rng)
            if item is not None:
                served[who].append(item)
                vote_id += 1
                _answer(state, who, item, "a", vote_id)
    assert all(len(ids) == len(set(ids)) for ids in served.values())
    assert sum(len(ids) for ids in served.values()) == 5 * 2  # every item exactly at target
    assert all(state.votes[i] == 2 for i in state.items)


def test_fewest_votes_first_then_closest_ratings() -> None:
    state = _state(4, ["strong", "weak", "mid"], target=3)
    vote_id = 0
    # "strong" beats "weak" everywhere: that pair's ratings drift apart
    for item_id, item in state.items.items():
        if {item.model_a, item.model_b} == {"strong", "weak"} and item.sample_id != "q3":
            vote_id += 1
            _answer(state, "x", item_id, "a" if item.model_a == "strong" else "b", vote_id)
    rng = random.Random(0)
    first = state.items[choose_item(state, "new", 0.0, rng) or 0]
    assert state.votes[first.id] == 0  # fewest votes wins over everything
    assert {first.model_a, first.model_b} != {"strong", "weak"}  # closest pair among those


def test_leases_spread_concurrent_annotators_and_lapse() -> None:
    state = _state(3, ["m1", "m2"], target=1)
    rng = random.Random(0)
    first = choose_item(state, "a", 0.0, rng)
    assert first is not None
    state.hold("a", first, True, 0.0)
    second = choose_item(state, "b", 1.0, rng)
    assert second not in (None, first)  # a's open item is full for now
    state.hold("b", second, True, 1.0)
    third = choose_item(state, "c", 2.0, rng)
    state.hold("c", third or 0, True, 2.0)
    assert choose_item(state, "d", 3.0, rng) is None  # all three held
    assert choose_item(state, "d", 3.0 + state.lease_s, rng) is not None  # leases lapsed


def test_gold_items_are_interleaved_every_nth() -> None:
    state = _state(10, ["m1", "m2"], target=3, config={"gold_every": 3},
                   gold={1: "a", 2: "b"})
    rng = random.Random(0)
    kinds = []
    for vote_id in range(1, 7):
        item = choose_item(state, "a", 0.0, rng)
        assert item is not None
        kinds.append("gold" if state.items[item].gold else "regular")
        _answer(state, "a", item, "a", vote_id)
    assert kinds == ["regular", "regular", "gold"] * 2


def test_quota_caps_an_annotator() -> None:
    state = _state(10, ["m1", "m2"], target=3, config={"quota": 2})
    rng = random.Random(0)
    for vote_id in (1, 2):
        _answer(state, "a", choose_item(state, "a", 0.0, rng) or 0, "a", vote_id)
    assert choose_item(state, "a", 0.0, rng) is None
    assert state.annotator_target() == 2


# -- reports ---------------------------------------------------------------------------
def test_report_agreement_majority_gold_and_export(db: Path, tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"sample_id": "q0", "answer": "alpha"}\n')
    with Store(db) as store:
        record, _ = create_campaign(store, CampaignSpec(
            name="c", suite="smoke", models=("alpha", "beta"), gold=read_gold(gold)))
        items = store.campaign_items(record.id)
        plan = {"ann": ["a", "a", "b"], "bob": ["a", "a", "b"], "cat": ["a", "b", "a"]}
        for who, outcomes in plan.items():
            for item, outcome in zip(items, outcomes, strict=False):
                store.add_vote(item, who, outcome, left_is_a=True, seconds=2.0)
        rows = store.campaign_votes(record.id)
        state = CampaignState.build(record, items, rows)
    report = campaign_report(state, rows)
    stats = {s["annotator"]: s for s in report["annotators"]}
    assert stats["ann"]["agreement_with_majority"] == 1.0
    assert stats["cat"]["agreement_with_majority"] == 0.333  # only on the first item
    assert stats["ann"]["gold_accuracy"] == 1.0  # q0: alpha (a) is better
    assert stats["ann"]["median_seconds"] == 2.0
    assert report["agreement"]["items_with_2_or_more_votes"] == 3
    assert report["agreement"]["fleiss_kappa"] is not None
    table = export_rows(state, rows)
    assert len(table) == 9 and "winner" in to_csv(table).splitlines()[0]


def test_agreement_matches_published_examples() -> None:
    # Krippendorff (2011), reliability data with missing values: alpha 0.743 / 0.849
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
              [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[v for v in col if v is not None] for col in zip(*coders, strict=True)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)
    # Fleiss (1971) as tabulated on Wikipedia: 10 subjects, 14 raters, kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    subjects = [[j for j, c in enumerate(row) for _ in range(c)] for row in table]
    assert fleiss_kappa(subjects) == pytest.approx(0.210, abs=5e-4)
    assert math.isnan(fleiss_kappa([["a", "a"]])) and majority(["a", "b"]) is None


def test_leaderboard_counts_and_rates() -> None:
    rows = leaderboard([("x", "y", "a"), ("y", "x", "b"), ("x", "y", "tie_bad")])
    by_model = {r["model"]: r for r in rows}
    assert by_model["x"]["wins"] == 2 and by_model["x"]["ties"] == 1
    assert by_model["y"]["losses"] == 2 and rows[0]["model"] == "x"


# -- auth and rendering ----------------------------------------------------------------
def test_password_hashes_are_salted_argon2id() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and "correct" not in first
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106 low-memory
    assert verify_password("correct horse", first) and not needs_rehash(first)
    assert not verify_password("correct horsE", first)
    assert not verify_password("x", "not-a-hash") and not verify_password("x", "$argon2id$bad")
    assert check_new_password("short") and check_new_password(" padded-password ")
    assert check_new_password("long enough") is None


def _old_scrypt_hash(password: str) -> str:
    """What evalarena stored before argon2id: scrypt$n$r$p$salt$hash."""
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)
    return f"scrypt$1024$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_an_old_scrypt_hash_verifies_and_is_replaced_at_the_next_login(tmp_path: Path) -> None:
    old = _old_scrypt_hash("old-password")
    assert verify_password("old-password", old) and not verify_password("wrong-password", old)
    assert needs_rehash(old)
    db = tmp_path / "old.db"
    with Store(db) as store:
        store.add_annotator("veteran", "annotator", old)
    service = ReviewService(db)
    try:
        assert service.login("veteran", "wrong-password") is None
        with Store(db) as store:
            assert store.annotator("veteran").password_hash == old  # type: ignore[union-attr]
        assert service.login("veteran", "old-password") is not None
        with Store(db) as store:
            stored = store.annotator("veteran").password_hash  # type: ignore[union-attr]
        assert stored.startswith("$argon2id$") and verify_password("old-password", stored)
        assert service.login("veteran", "old-password") is not None  # and it keeps working
    finally:
        service.close()


def test_outputs_render_as_markdown_with_html_escaped() -> None:
    hostile = ('<script>alert(1)</script> <img src=x onerror="alert(2)">\n\n'
               "[click](javascript:alert(3)) ![t](http://example.invalid/t.png)\n\n"
               "```python\nif a < b:\n    print('<b>')\n```\n\n**bold**")
    html = markdown_html(hostile)
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "&lt;script&gt;" in html and "onerror=&quot;" in html
    assert '<code class="language-python">' in html and "if a &lt; b:" in html
    assert "<strong>bold</strong>" in html

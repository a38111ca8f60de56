"""The label - train - review loop without Qt: the "review next" order and the offer to train or retrain."""

from __future__ import annotations

import numpy as np

from core.data.folders import ImageItem
from core.project import ImageSets
from core.session import ReviewSession
from core.session.label_loop import (
    LABELED_OFFSET,
    RETRAIN_MIN_NEW,
    offer_for,
    review_keys,
    review_keys_for,
    review_order,
    training_offer,
)
from core.store import LabelRecord
from tests.test_cnn import QUICK, labeled_project


def test_review_order_puts_unlabeled_images_nearest_the_band_first():
    scores = np.array([0.05, 0.48, 0.9, 0.55, np.nan, 0.5, 0.3])
    labels = ["unlabeled", "unlabeled", "unlabeled", "good", "unlabeled", "defect", "unlabeled"]
    order = review_order(scores, labels, t1=0.4, t2=0.6)
    # Unlabeled by distance from the band's middle (0.48, then 0.3, 0.9, 0.05), then labeled, unscored last.
    assert order.tolist() == [1, 6, 2, 0, 5, 3, 4]
    keys = review_keys(scores, labels, t1=0.4, t2=0.6)
    assert keys[1] < 1 < keys[6] < keys[2]  # inside the band: a key below 1
    assert keys[3] >= LABELED_OFFSET and np.isnan(keys[4])


def test_review_order_with_one_threshold_or_none():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    labels = ["unlabeled"] * 5
    assert review_order(scores, labels, t1=3.9, t2=3.9).tolist()[:2] == [3, 2]
    assert review_order(scores, labels).tolist()[0] == 2  # no threshold: nearest the median first
    assert review_order(scores, labels, centre=9.0).tolist()[0] == 4
    assert np.isnan(review_keys(np.full(3, np.nan), ["unlabeled"] * 3)).all()


def _sets(n_good: int, n_defect: int) -> ImageSets:
    sets = ImageSets(root=__import__("pathlib").Path("/p"), origin="store")
    for k in range(n_good):
        sets.judged.append(ImageItem(f"/p/g{k}.png", "test", "good"))
    for k in range(n_defect):
        sets.judged.append(ImageItem(f"/p/d{k}.png", "test", "defect"))
    return sets


def _records(n: int, label: str, time: str, start: int = 0) -> list[LabelRecord]:
    return [LabelRecord(start + k, label, source="human", time=time) for k in range(n)]


def test_training_offer_follows_the_labels():
    # Too few defects for the cnn, no run: nothing to offer.
    assert training_offer(_sets(20, 9), _records(29, "good", "2026-01-01")) is None
    # Ten defects: offer to train the cnn, naming the counts and the held-out share.
    offer = training_offer(_sets(20, 10), _records(30, "good", "2026-01-01"))
    assert offer.action == "train" and offer.detector == "cnn"
    assert "10 defect and 20 good" in offer.message and "6 held out" in offer.message
    # The shown run is the cnn's: a retrain only once enough labels were set after it.
    run = ("cnn", "2026-02-01", "run-0002")
    few = _records(RETRAIN_MIN_NEW - 1, "defect", "2026-02-02") + _records(20, "good", "2026-01-01", 10)
    assert training_offer(_sets(20, 10), few, *run) is None
    many = _records(RETRAIN_MIN_NEW, "defect", "2026-02-02") + _records(20, "good", "2026-01-01", 10)
    offer = training_offer(_sets(20, 12), many, *run)
    assert offer.action == "retrain" and offer.detector == "cnn" and f"{RETRAIN_MIN_NEW} labels since" in offer.message
    assert offer.key == "retrain:run-0002:cnn"
    # An unsupervised run and new good labels, too few defects for the cnn: retrain it on the new good images.
    records = _records(6, "good", "2026-02-02") + _records(3, "defect", "2026-01-01", 6)
    offer = training_offer(_sets(6, 3), records, "padim", "2026-02-01", "run-0001", ["test"] * 9)
    assert offer.action == "retrain" and offer.detector == "padim" and offer.mark_for_training == tuple(range(6))
    assert "7 more defect labels" in offer.message
    # The same good images already used for training: nothing new to learn from.
    assert training_offer(_sets(6, 3), records, "padim", "2026-02-01", "run-0001", ["train"] * 9) is None


def test_the_loop_on_a_session(tmp_path):
    """Label, train the cnn through the session's job, the review order follows the new model's doubts."""
    kinds = labeled_project(tmp_path / "line", n_good=20, n_defect=10, n_unlabeled=8)
    session = ReviewSession()
    try:
        session.open(tmp_path / "line").result()
        assert session.run is None and review_keys_for(session) is None
        offer = offer_for(session)
        assert offer is not None and offer.action == "train" and offer.detector == "cnn"
        done = session.training_job(offer.detector, QUICK)(lambda *a: None, lambda: False)
        session.adopt(done)
        assert session.run.detector == "cnn" and offer_for(session) is None  # nothing new since it trained
        # The threshold panel counts what the model did not train on: held-out labels only (6 of 30).
        data = session.threshold_data()
        assert data.n_train == 24 and data.n_judged == 6
        assert int(np.isfinite(data.scores).sum()) == 38 - 24
        keys = review_keys_for(session)
        store = session.store
        unlabeled = [store.image_id(p) for p, k in kinds.items() if k.startswith("unlabeled")]
        first = np.argsort(keys, kind="stable")[:len(unlabeled)]
        assert set(first.tolist()) == set(unlabeled)  # unlabeled images are reviewed first
        probs = session.run.scores[first]
        assert np.all(np.diff(np.abs(probs - 0.5)) >= -1e-12)  # least sure first
        # Label five of them: a retrain is offered; a label on a held-out image keeps it judged.
        kind_of = {store.image_id(p): k for p, k in kinds.items()}
        for image_id in unlabeled[:RETRAIN_MIN_NEW]:
            session.label(image_id, kind_of[image_id].removeprefix("unlabeled-")).result()
        offer = offer_for(session)
        assert offer.action == "retrain" and offer.detector == "cnn"
        assert session.judged_label(unlabeled[0], "good") == "good"  # new label, never trained on: judged
        trained = next(i for i in range(store.n_images) if session.threshold_data().labels[i] == "unlabeled"
                       and store.label(i).label in ("good", "defect"))
        assert session.judged_label(trained, "good") == "unlabeled"  # it trained on it: not judged
    finally:
        session.shutdown()

"""The label - train - review loop in the window (offscreen, no modal dialogs): too few defect labels is said
plainly; once enough defects are labeled a banner offers the supervised cnn; its button trains it; the
threshold panel counts held-out labels only; the gallery's "Review next" order puts the unlabeled images the
new model is least sure about first; labels set afterwards bring a retrain offer."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from core.session.label_loop import LABELED_OFFSET, RETRAIN_MIN_NEW, review_keys_for
from tests.test_cnn import QUICK, labeled_project

STORE_MS = 10000
JOB_MS = 120000


@pytest.fixture
def loop_window(qtbot, tmp_path):
    from inspector_gui.main_window import MainWindow

    kinds = labeled_project(tmp_path / "line", n_good=20, n_defect=6, n_unlabeled=12)
    win = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win.setProperty("quiet_errors", True)
    qtbot.addWidget(win, before_close_func=_stop_job)
    win.resize(1366, 768)
    win.show()
    qtbot.waitExposed(win)
    win.open_path(tmp_path / "line")
    qtbot.waitUntil(lambda: win.store is not None and win.gallery.model.rowCount() == len(kinds), timeout=30000)
    yield win, kinds
    if win.isVisible():
        win.close()


def _stop_job(win) -> None:
    if win.job is not None and win.job.running:
        win.job.cancel()
        win.job.wait(60000)


def test_label_defects_train_cnn_from_the_banner_and_review_next(qtbot, loop_window):
    win, kinds = loop_window
    store, banner, panel = win.store, win.loop.banner, win.training
    ids = {p: store.image_id(p) for p in kinds}
    unlabeled = sorted(ids[p] for p, k in kinds.items() if k.startswith("unlabeled"))
    unlabeled_defects = [ids[p] for p, k in kinds.items() if k == "unlabeled-defect"]

    # Six defect labels: no offer; the Train button with cnn says how many labels there are and are needed.
    qtbot.wait(300)
    assert banner.isHidden()
    panel.set_settings("cnn", QUICK)
    panel.train_button.click()
    assert win.job is None
    assert "20 good and 6 defect labels" in panel.status.text() and "4 more defect labels" in panel.status.text()
    assert "4 more defect labels" in win.statusBar().currentMessage()

    # "Review next" before any run: nothing is scored, the order is by name.
    combo = win.gallery.sort_combo
    combo.setCurrentIndex(combo.findText("Review next"))
    assert win.gallery.model.sort_order()[0] == "review"
    before = win.gallery.proxy.paths()
    assert before == sorted(before)

    # Label four more defects in the window (the engineer finds them): the banner offers the cnn.
    for image_id in unlabeled_defects[:4]:
        win.show_image_id(image_id)
        win.apply_label("defect")
    qtbot.waitUntil(lambda: banner.isVisible(), timeout=STORE_MS)
    assert "10 defect and 20 good images are labeled" in banner.message.text()
    assert banner.action_button.text() == "Train cnn"

    # Its button trains the cnn (the panel's settings) and scores every image.
    banner.action_button.click()
    assert win.job is not None
    qtbot.waitUntil(lambda: win.run is not None and win.run.model is not None and win.run.detector == "cnn",
                    timeout=JOB_MS)
    qtbot.waitUntil(lambda: not win.job.running, timeout=STORE_MS)
    assert banner.isHidden()
    assert np.isfinite(win.gallery.model.scores()).all()

    # The threshold panel counts the held-out labels only (20 % of each class: 4 good, 2 defect).
    model = win.threshold_model
    assert len(model.group_scores("good")) == 4 and len(model.group_scores("defect")) == 2
    assert model.stats().n_left_out == 24

    # Review next: the order changed; the still-unlabeled images come first, least sure (nearest 0.5) first.
    qtbot.waitUntil(lambda: win.gallery.proxy.paths() != before, timeout=STORE_MS)
    after = win.gallery.proxy.paths()
    still = [i for i in unlabeled if store.label(i).label == "unlabeled"]
    first = [store.image_id(p) for p in after[:len(still)]]
    assert set(first) == set(still)
    # ... in the order core gives (label_loop.review_keys with the panel's thresholds): least sure first.
    t1, t2 = model.t1, model.t2
    expected = review_keys_for(win.session, t1, t2)
    np.testing.assert_array_equal(win.gallery.model.review_keys(), expected)
    assert np.all(np.diff(expected[first]) >= 0) and expected[first].max() < LABELED_OFFSET
    if not np.isfinite([t1, t2]).all():  # no threshold yet: nearest probability 0.5 first
        probs = win.gallery.model.scores()[first]
        assert np.all(np.diff(np.abs(probs - 0.5)) >= -1e-12)

    # Labeling from the review order does not reshuffle it under the cursor, and brings a retrain offer.
    order_now = win.gallery.proxy.paths()
    for path in order_now[:RETRAIN_MIN_NEW]:
        win.show_image(path)
        win.apply_label("defect" if kinds[path].endswith("defect") else "good")
    qtbot.waitUntil(lambda: banner.isVisible(), timeout=STORE_MS)
    assert banner.action_button.text() == "Retrain cnn" and f"{RETRAIN_MIN_NEW} labels since cnn" in \
        banner.message.text()
    assert win.gallery.proxy.paths() == order_now
    # "Not now" hides it, and it stays hidden while more labels arrive.
    banner.dismiss_button.click()
    assert banner.isHidden()
    win.show_image(order_now[RETRAIN_MIN_NEW])
    win.apply_label("good")
    qtbot.wait(400)
    assert banner.isHidden()


def test_gallery_review_sort_uses_the_keys_nan_last(qtbot):
    from inspector_gui.gallery_model import GalleryModel

    model = GalleryModel(threads=1)
    model.set_items([f"/x/{n}.png" for n in ("a", "b", "c", "d")])
    model.set_review_keys([2.0, np.nan, 0.5, 1e9 + 0.1])
    model.sort_by("review")
    assert [model.path(r) for r in range(4)] == ["/x/c.png", "/x/a.png", "/x/d.png", "/x/b.png"]
    model.set_review_keys([0.1, 0.2, 0.3, 0.4])  # new keys re-sort at once while sorted by them
    assert [model.path(r) for r in range(4)] == ["/x/a.png", "/x/b.png", "/x/c.png", "/x/d.png"]
    with pytest.raises(ValueError, match="3 keys for 4 images"):
        model.set_review_keys([1.0, 2.0, 3.0])
    model.shutdown()

"""QThread jobs: progress reaches the main thread, cancel stops within a second, errors are relayed."""

import threading
import time

import pytest
from PySide6.QtCore import QThread

from core.detectors.base import Cancelled
from core.detectors.registry import create
from inspector_gui.workers import Job
from tests.conftest import TINY_VAE, random_images


def test_job_runs_off_the_main_thread_and_reports(qtbot):
    seen = {}

    def work(progress, should_stop):
        seen["thread"] = threading.current_thread()
        for i in range(5):
            progress(i + 1, 5, {"loss": float(i)})
        return 42

    job = Job("t", work, min_interval=0.0)
    got = []
    job.progress.connect(lambda d, t, info: got.append((d, t, info["loss"], QThread.currentThread())))
    with qtbot.waitSignal(job.finished, timeout=5000) as blocker:
        job.start()
    assert blocker.args == [42]
    assert seen["thread"] is not threading.main_thread()
    assert [g[0] for g in got] == [1, 2, 3, 4, 5]
    # relayed progress is delivered in the main (GUI) thread
    assert all(g[3] is QThread.currentThread() for g in got)
    qtbot.waitUntil(lambda: not job.running, timeout=2000)


def test_cancel_stops_training_within_a_second(qtbot):
    det = create("vae", **{**TINY_VAE, "epochs": 100000})
    images = random_images(4, size=64)

    def work(progress, should_stop):
        det.fit(images, progress=progress, should_stop=should_stop)

    job = Job("train", work)
    steps = []
    job.progress.connect(lambda d, t, info: steps.append(d))
    with qtbot.waitSignal(job.progress, timeout=10000):
        job.start()
    t0 = time.perf_counter()
    with qtbot.waitSignal(job.cancelled, timeout=3000):
        job.cancel()
    assert time.perf_counter() - t0 < 1.0
    assert job.wait(2000)


def test_wait_delivers_the_last_signals_without_an_event_loop(qtbot):
    """A main thread that blocks in wait() (closing the window, a test's teardown) still gets the result: the
    worker quits its own thread, and wait() delivers the queued signals before it returns."""
    release = threading.Event()

    def work(progress, should_stop):
        release.wait(10)
        return "done"

    job = Job("w", work)
    got, ended = [], []
    job.finished.connect(got.append)
    job.ended.connect(lambda: ended.append(True))
    job.start()
    assert not job.wait(50)  # still running: a bounded wait says so
    release.set()
    assert job.wait(30000)
    assert got == ["done"] and ended == [True] and not job.running


def test_stop_cancels_and_waits_for_the_end(qtbot):
    def work(progress, should_stop):
        while not should_stop():
            time.sleep(0.005)
            progress(1, 2, {})
        raise Cancelled()

    job = Job("s", work)
    cancelled = []
    job.cancelled.connect(lambda: cancelled.append(True))
    job.start()
    qtbot.waitUntil(lambda: job.running, timeout=5000)
    assert job.stop(30000)
    assert cancelled == [True] and not job.running
    assert job.stop(10)  # stopping an ended job is harmless


def test_errors_are_relayed_with_the_message(qtbot):
    def work(progress, should_stop):
        raise ValueError("/data/x.png: not an image")

    job = Job("bad", work)
    with qtbot.waitSignal(job.failed, timeout=5000) as blocker:
        job.start()
    assert blocker.args[0] == "/data/x.png: not an image" and "ValueError" in blocker.args[1]


def test_cancelled_exception_counts_as_cancel(qtbot):
    def work(progress, should_stop):
        raise Cancelled()

    job = Job("c", work)
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        job.start()


@pytest.mark.parametrize("name", ["vae", "gmm", "iforest", "ae"])
def test_training_form_round_trips_the_schema(qtbot, name):
    from core.detectors.registry import detector_class
    from inspector_gui.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.detector.setCurrentText(name)
    values = panel.settings()
    assert values == {p.name: p.default for p in detector_class(name).PARAMS}


def test_training_form_rejects_a_bad_value_and_emits_settings(qtbot):
    from inspector_gui.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_settings("vae", {"epochs": 3, "image_size": 64})
    with qtbot.waitSignal(panel.trainRequested) as blocker:
        panel.train_button.click()
    assert blocker.args[0] == "vae" and blocker.args[1]["epochs"] == 3 and blocker.args[1]["image_size"] == 64
    panel._editors["image_size"][1].setText("big")
    with qtbot.assertNotEmitted(panel.trainRequested):
        panel.train_button.click()
    assert "image_size" in panel.status.text()


def test_progress_display_shows_eta_and_loss_curve(qtbot):
    from inspector_gui.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.job_started()
    panel.job_progress(50, 100, {"stage": "training", "loss": 12.5, "epoch": 2, "elapsed": 10.0})
    panel.job_progress(60, 100, {"stage": "training", "loss": 11.0, "epoch": 2, "elapsed": 12.0})
    assert panel.progress.value() == 600
    assert "ETA 8 s" in panel.status.text() and "epoch 2" in panel.status.text()
    x, y = panel.loss_curve.getData()
    assert list(y) == [12.5, 11.0]


def test_loss_curve_is_drawn_over_epochs(qtbot):
    from inspector_gui.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.job_started()
    # 4 epochs of 25 steps: step 50 is the end of epoch 2, step 60 is 2.4 epochs in
    for done, loss in ((10, 3.0), (50, 2.0), (60, 1.5)):
        panel.job_progress(done, 100, {"stage": "training", "loss": loss, "epoch": done // 25 + 1, "epochs": 4,
                                       "elapsed": done / 10})
    x, y = panel.loss_curve.getData()
    assert list(x) == pytest.approx([0.4, 2.0, 2.4]) and list(y) == [3.0, 2.0, 1.5]
    assert panel.loss_plot.getPlotItem().getAxis("bottom").labelText == "epoch"
    assert "epoch 3 / 4" in panel.status.text()


def test_eta_accounts_for_the_time_budget(qtbot):
    """The issue's case: a 60 s budget on a run whose epochs would take far longer showed 38 minutes."""
    from inspector_gui.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.job_started()
    info = {"stage": "training", "loss": 1.0, "epoch": 1, "epochs": 1000, "elapsed": 10.0, "time_budget": 60.0}
    panel.job_progress(40, 10000, info)  # 0.4 % in 10 s: 41 minutes by rate, 50 s by the budget
    assert "ETA 50 s (time budget)" in panel.status.text()
    assert panel.progress.value() == int(1000 * 10 / 60)  # the bar moves by time when the budget ends first
    panel.job_progress(9000, 10000, {**info, "elapsed": 30.0})  # nearly done by steps: the rate is sooner
    assert "ETA 3 s" in panel.status.text() and "time budget" not in panel.status.text()


def test_command_line_eta_accounts_for_the_time_budget():
    import io

    from core.progress_text import TextProgress, eta_seconds

    assert eta_seconds(0.004, 10.0, 60.0) == pytest.approx(50.0)
    assert eta_seconds(0.5, 10.0, 60.0) == pytest.approx(10.0)
    assert eta_seconds(0.5, 10.0) == pytest.approx(10.0) and eta_seconds(0.0, 1.0) is None
    out = io.StringIO()
    bar = TextProgress("training", stream=out, min_interval=0.0)
    bar(40, 10000, {"loss": 1.0, "epoch": 1, "epochs": 1000, "elapsed": 10.0, "time_budget": 60.0})
    line = out.getvalue()
    assert "ETA    50s" in line and "time_budget" not in line and "epochs" not in line


def test_qt_binding_does_not_leak_references_on_emit():
    """PySide6 6.12.0 loses a reference to True per Signal.emit() and aborts the interpreter after a few
    thousand; pyproject pins it out. This catches a binding with the same fault (in a child process)."""
    import subprocess
    import sys

    code = ("import sys\nfrom PySide6.QtCore import QObject, Signal\n"
            "class A(QObject):\n    s = Signal(int)\n"
            "a = A(); got = []\na.s.connect(got.append)\nb = sys.getrefcount(True)\n"
            "for i in range(300): a.s.emit(i)\nprint(sys.getrefcount(True) - b)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-500:]
    assert abs(int(out.stdout.strip())) < 50

from core.label_history import LabelHistory, LabelState, LabelStep

A, B, C = LabelState("unlabeled"), LabelState("defect", "scratch"), LabelState("good")


def test_undo_redo_order_and_new_action_clears_redo():
    h = LabelHistory()
    h.record(LabelStep(1, A, B))
    h.record(LabelStep(2, A, C))
    assert h.undo() == (2, A)
    assert h.undo() == (1, A)
    assert h.undo() is None
    assert h.redo() == (1, B)
    h.record(LabelStep(3, A, C))
    assert h.redo() is None and h.can_undo


def test_no_op_steps_are_not_recorded_and_limit_holds():
    h = LabelHistory(limit=3)
    h.record(LabelStep(1, A, A))
    assert not h.can_undo
    for i in range(5):
        h.record(LabelStep(i, A, B))
    assert [h.undo()[0] for _ in range(3)] == [4, 3, 2] and h.undo() is None

"""The Qt application (PySide6 + pyqtgraph): windows, widgets, item models and QThread workers.

Thin by design: every computation is a call into `core`.
"""

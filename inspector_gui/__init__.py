"""The Qt application (PySide6 + pyqtgraph): windows, widgets, item models and QThread workers.

Thin by design: every computation is a call into `core`. Importing this package configures pyqtgraph
once for every widget: arrays are row-major (H x W [x C]) like numpy and OpenCV.
"""

import pyqtgraph as pg

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")

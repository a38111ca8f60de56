"""How one gallery tile is painted: thumbnail, file name, score, split tag and a coloured label badge.

Kept apart from the view so that the look can change without touching selection or scrolling logic. Every value
comes from the model's roles; asking for DecorationRole is what schedules a thumbnail decode, so only tiles that
are painted cost a decode.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from core.vocabulary import LABEL_COLOURS
from inspector_gui.gallery_model import GalleryRole, format_score
from inspector_gui.gallery_thumbs import THUMB_SIZE

REVIEW_COLOUR = "#f9a825"  # tile frame of images whose score lies in the review band

_PAD = 4


def fitted_score(score: float | None, metrics: QFontMetrics, width: int) -> str:
    """The tile's score text in at most `width` pixels: the model's 4 significant digits when they fit, else
    3, 2 or 1 (a narrow tile shows "5.21e4", never a cut "5.209e"). Only a width too small for one digit
    elides."""
    text = format_score(score)
    for digits in (3, 2, 1):
        if metrics.horizontalAdvance(text) <= width or text == "—":
            return text
        text = f"{score:.{digits}g}"
        if "e" in text:
            mantissa, exp = text.split("e")
            text = f"{mantissa}e{int(exp)}"
    return metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)


class GalleryDelegate(QStyledItemDelegate):
    """Paints one tile: thumbnail, file name, score, split tag and a coloured label badge (+ defect type)."""

    def __init__(self, parent: QWidget | None = None, thumb_size: int = THUMB_SIZE):
        super().__init__(parent)
        self.thumb_size = thumb_size

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont, QFont]:
        base = QFont(option.font)
        bold = QFont(base)
        bold.setBold(True)
        small = QFont(base)
        small.setPointSizeF(max(6.0, base.pointSizeF() * 0.85))
        return base, bold, small

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        base, _, small = self._fonts(option)
        line, small_line = QFontMetrics(base).height(), QFontMetrics(small).height()
        width = max(self.thumb_size + 2 * _PAD, 128)
        height = _PAD + self.thumb_size + 3 + line + 2 + line + 3 + small_line + 4 + _PAD
        return QSize(width, height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        base, bold, small = self._fonts(option)
        fm, fm_small = QFontMetrics(base), QFontMetrics(small)
        palette = option.palette
        rect = option.rect.adjusted(1, 1, -1, -1)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)

        # Tile background and frame: selection in the palette's highlight, review band in amber.
        painter.setPen(Qt.PenStyle.NoPen)
        if selected:
            fill = QColor(palette.color(QPalette.ColorRole.Highlight))
            fill.setAlpha(70)
        else:
            fill = palette.color(QPalette.ColorRole.Base)
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 4, 4)
        if index.data(GalleryRole.ReviewRole.value):
            painter.setPen(QPen(QColor(REVIEW_COLOUR), 2))
        elif selected:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
        else:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 4, 4)

        # Thumbnail (asking DecorationRole is what schedules the decode), centred and scaled to fit.
        thumb_box = QRect(rect.x() + (rect.width() - self.thumb_size) // 2, rect.y() + _PAD,
                          self.thumb_size, self.thumb_size)
        image = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(image, QImage) and not image.isNull():
            target = QSize(image.width(), image.height()).scaled(thumb_box.size(),
                                                                 Qt.AspectRatioMode.KeepAspectRatio)
            painter.drawImage(QRect(thumb_box.x() + (thumb_box.width() - target.width()) // 2,
                                    thumb_box.y() + (thumb_box.height() - target.height()) // 2,
                                    target.width(), target.height()), image)

        inner_w = rect.width() - 2 * _PAD
        x = rect.x() + _PAD
        y = thumb_box.bottom() + 1 + 3
        text_colour = palette.color(QPalette.ColorRole.Text)

        # File name, elided in the middle: part names often differ only in their last digits.
        painter.setFont(base)
        painter.setPen(text_colour)
        name = fm.elidedText(str(index.data(Qt.ItemDataRole.DisplayRole) or ""), Qt.TextElideMode.ElideMiddle,
                             inner_w)
        painter.drawText(QRect(x, y, inner_w, fm.height()), Qt.AlignmentFlag.AlignCenter, name)
        y += fm.height() + 2

        # Score (bold, left) and split tag (small, boxed, right).
        split = str(index.data(GalleryRole.SplitRole.value) or "")
        tag_w = fm_small.horizontalAdvance(split) + 8 if split else 0
        if split:
            tag = QRect(x + inner_w - tag_w, y + (fm.height() - fm_small.height() - 2) // 2, tag_w,
                        fm_small.height() + 2)
            painter.setFont(small)
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
            painter.drawRoundedRect(tag, 3, 3)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, split)
        painter.setFont(bold)
        painter.setPen(text_colour)
        score_w = inner_w - tag_w - 4
        score = fitted_score(index.data(GalleryRole.ScoreRole.value), QFontMetrics(bold), score_w)
        painter.drawText(QRect(x, y, score_w, fm.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, score)
        y += fm.height() + 3

        # Label badge: white text on the label colour, then the defect type in the remaining width.
        label = str(index.data(GalleryRole.LabelRole.value) or "unlabeled")
        painter.setFont(small)
        badge = QRect(x, y, fm_small.horizontalAdvance(label) + 10, fm_small.height() + 4)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(LABEL_COLOURS.get(label, LABEL_COLOURS["unlabeled"])))
        painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        painter.setPen(QColor("white"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
        defect = str(index.data(GalleryRole.DefectTypeRole.value) or "")
        if defect:
            rest = QRect(badge.right() + 5, y, x + inner_w - badge.right() - 5, badge.height())
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(rest, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             fm_small.elidedText(defect, Qt.TextElideMode.ElideRight, rest.width()))
        painter.restore()

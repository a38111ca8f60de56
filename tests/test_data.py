import numpy as np
import pytest
import torch

from core.data.folders import FolderError, scan_folder
from core.data.images import ImageLoadError, decode_image, load_images
from core.data.patches import patch_coverage_map, random_crops, sliding_patches
from tests.conftest import write_png


def test_decode_depths_channels_and_unicode_path(tmp_path):
    gray16 = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    p16 = write_png(tmp_path / "prüfteil_灰度.png", gray16)
    img = decode_image(p16)
    assert img.shape == (64, 64, 1) and img.dtype == np.float32
    assert img[0, 1, 0] == pytest.approx(16 / 65535)  # 16-bit precision kept
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 2] = 200  # red in BGR order
    bgra[..., 3] = 255
    rgba = decode_image(write_png(tmp_path / "rgba.png", bgra))
    assert rgba.shape == (8, 8, 3) and rgba[0, 0, 0] == pytest.approx(200 / 255) and rgba[0, 0, 2] == 0
    assert decode_image(p16, channels="rgb").shape == (64, 64, 3)
    assert decode_image(tmp_path / "rgba.png", channels="gray").shape == (8, 8, 1)


def test_bad_files_are_reported_by_name_and_skipped(tmp_path):
    good = write_png(tmp_path / "a_good.png", np.full((16, 16), 128, np.uint8))
    empty = tmp_path / "b_empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "c_notes.png"
    text.write_text("this is not an image")
    truncated = tmp_path / "d_truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    seen = []
    images, kept, skipped = load_images([good, empty, text, truncated, tmp_path / "e_missing.png"],
                                        on_skip=seen.append)
    assert kept == [str(good)] and len(images) == 1
    assert [s.path for s in skipped] == [str(empty), str(text), str(truncated), str(tmp_path / "e_missing.png")]
    assert "empty" in skipped[0].reason
    assert seen == skipped
    with pytest.raises(ImageLoadError, match="c_notes.png"):
        decode_image(text)


def test_mvtec_layout_with_masks(tiny_demo):
    folder = scan_folder(tiny_demo)
    assert folder.layout == "mvtec"
    train, test = folder.split("train"), folder.split("test")
    assert len(train) == 12 and all(it.label == "good" for it in train)
    defects = [it for it in test if it.label == "defect"]
    assert len(defects) == 6 and {it.defect_type for it in defects} == {"scratch", "blowhole", "erased"}
    assert all(it.mask_path and it.mask_path.endswith("_mask.png") for it in defects)
    assert sum(it.label == "good" for it in test) == 4


def test_flat_folder_and_wrong_folders(tmp_path):
    write_png(tmp_path / "flat" / "x.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "flat" / "sub" / "y.bmp", np.zeros((8, 8), np.uint8))
    folder = scan_folder(tmp_path / "flat")
    assert folder.layout == "flat" and len(folder.items) == 2
    with pytest.raises(FolderError, match="no such folder"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match="no image files"):
        scan_folder(tmp_path / "empty")


def test_sliding_window_grid_and_order():
    img = torch.arange(2 * 8 * 10, dtype=torch.float32).reshape(2, 8, 10)
    patches, (gh, gw) = sliding_patches(img, 4, 2)
    assert (gh, gw) == (3, 4) and patches.shape == (12, 2, 4, 4)
    # row-major: patch (1, 2) starts at y=2, x=4
    assert torch.equal(patches[1 * gw + 2], img[:, 2:6, 4:8])


def test_random_crops_come_from_the_images():
    gen = torch.Generator().manual_seed(0)
    imgs = [torch.full((1, 20, 20), float(i)) for i in range(3)]
    crops = random_crops(imgs, 50, 8, gen)
    assert crops.shape == (50, 1, 8, 8)
    assert set(crops.flatten(1).mean(1).tolist()) <= {0.0, 1.0, 2.0}
    assert len(set(crops.flatten(1).mean(1).tolist())) == 3


def test_coverage_map_spreads_patch_values():
    grid = np.zeros((3, 3), np.float32)
    grid[1, 1] = 9.0  # the patch at (4..12, 4..12) of a 16 px image, patch 8, stride 4
    dense = patch_coverage_map(grid, (16, 16), 8, 4)
    assert dense.shape == (16, 16)
    assert dense[0, 0] == 0  # only patch (0,0) covers it
    assert dense[6, 6] == pytest.approx(9.0 / 4)  # covered by 4 patches, one of them hot
    assert patch_coverage_map(grid, (16, 16), 8, 4, reduce="max")[6, 6] == 9.0

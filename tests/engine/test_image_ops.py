"""engine.image_ops: feedback-frame operations, file readers and ControlNet conditioning images (no Blender)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from engine import image_ops as ops


def gradient_image(h: int = 48, w: int = 64, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A smooth RGB image with varied values, scaled per channel by ``tint``."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([x / (w - 1), y / (h - 1), (x + y) / (w + h - 2)], axis=2)
    return np.clip(np.rint((0.2 + 0.8 * base) * np.array(tint, np.float32) * 255), 0, 255).astype(np.uint8)


def lab_mean(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(axis=0)


REDDISH = gradient_image(tint=(1.0, 0.35, 0.25))
BLUISH = gradient_image(h=30, w=40, tint=(0.2, 0.4, 1.0))


# --- match_colors -----------------------------------------------------------------------------------------------------

def test_match_colors_none_and_zero_amount_are_identity():
    assert ops.match_colors(REDDISH, BLUISH, "NONE") is REDDISH
    assert ops.match_colors(REDDISH, BLUISH, "LAB", amount=0.0) is REDDISH
    out = ops.match_colors(REDDISH, BLUISH, "none", amount=1.0)
    np.testing.assert_array_equal(out, REDDISH)


@pytest.mark.parametrize("mode", ["LAB", "HSV", "RGB"])
def test_match_colors_moves_towards_reference(mode):
    out = ops.match_colors(REDDISH, BLUISH, mode)
    assert out.dtype == np.uint8 and out.shape == REDDISH.shape  # reference has another size
    mean = out.reshape(-1, 3).mean(axis=0)
    assert REDDISH[..., 0].mean() > REDDISH[..., 2].mean()
    assert mean[2] > mean[0] + 40, mean  # now bluish
    if mode == "RGB":
        np.testing.assert_allclose(mean, BLUISH.reshape(-1, 3).mean(axis=0), atol=4)
    if mode == "LAB":
        # Matched per channel in Lab, then clipped to the RGB gamut: close to the reference, far from the source.
        before = np.linalg.norm(lab_mean(REDDISH) - lab_mean(BLUISH))
        after = np.linalg.norm(lab_mean(out) - lab_mean(BLUISH))
        assert after < 0.15 * before, (before, after)
        assert abs(lab_mean(out)[0] - lab_mean(BLUISH)[0]) < 3
    if mode == "HSV":
        hue = lambda im: cv2.cvtColor(im.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)[..., 0].mean()  # noqa: E731
        assert abs(hue(out) - hue(BLUISH)) < 15


def test_match_colors_amount_blends_between():
    full = ops.match_colors(REDDISH, BLUISH, "LAB", 1.0).astype(np.float32)
    half = ops.match_colors(REDDISH, BLUISH, "LAB", 0.5).astype(np.float32)
    expected = (REDDISH.astype(np.float32) + full) / 2
    assert np.abs(half - expected).max() <= 1.0
    blue = [im[..., 2].mean() for im in (REDDISH.astype(np.float32), half, full)]
    assert blue[0] < blue[1] < blue[2]


def test_match_colors_rejects_unknown_mode_and_leaves_input_alone():
    before = REDDISH.copy()
    ops.match_colors(REDDISH, BLUISH, "RGB")
    np.testing.assert_array_equal(REDDISH, before)
    with pytest.raises(ValueError, match="colour mode"):
        ops.match_colors(REDDISH, BLUISH, "XYZ")


# --- add_noise, adjust_contrast, blend_frames -------------------------------------------------------------------------

GREY = np.full((128, 128, 3), 128, np.uint8)


def test_add_noise_zero_is_identity():
    assert ops.add_noise(GREY, 0.0, seed=3) is GREY


def test_add_noise_reproducible_from_seed():
    a = ops.add_noise(GREY, 0.05, seed=7)
    np.testing.assert_array_equal(a, ops.add_noise(GREY, 0.05, seed=7))
    assert not np.array_equal(a, ops.add_noise(GREY, 0.05, seed=8))
    assert a.dtype == np.uint8 and a.shape == GREY.shape
    # Deforum's seeds may be negative or beyond 32 bits.
    np.testing.assert_array_equal(ops.add_noise(GREY, 0.05, seed=-1), ops.add_noise(GREY, 0.05, seed=-1))
    ops.add_noise(GREY, 0.05, seed=2**40)


@pytest.mark.parametrize("amount", [0.02, 0.065, 0.15])
def test_add_noise_std_in_deforum_units(amount):
    out = ops.add_noise(GREY, amount, seed=11).astype(np.float32)
    std = (out - 128).std()
    assert abs(std - amount * 127.5) < 0.1 * amount * 127.5, std
    assert abs((out - 128).mean()) < 0.5


def test_add_noise_clips():
    white = np.full((16, 16, 3), 250, np.uint8)
    out = ops.add_noise(white, 0.5, seed=1)
    assert out.max() == 255 and out.min() < 200


def test_adjust_contrast_identity_and_formula():
    assert ops.adjust_contrast(REDDISH, 1.0) is REDDISH
    pixels = np.array([[[0, 10, 100], [101, 200, 255]]], np.uint8)
    np.testing.assert_array_equal(ops.adjust_contrast(pixels, 0.9), [[[0, 9, 90], [91, 180, 230]]])
    # round(101 * 0.95) = 96 (95.95), round(10 * 0.95) = 10 (9.5 -> even); > 255 clips instead of wrapping.
    np.testing.assert_array_equal(ops.adjust_contrast(pixels, 0.95), [[[0, 10, 95], [96, 190, 242]]])
    np.testing.assert_array_equal(ops.adjust_contrast(pixels, 1.5), [[[0, 15, 150], [152, 255, 255]]])
    with pytest.raises(ValueError):
        ops.adjust_contrast(pixels, -0.5)


def test_blend_frames():
    a = np.zeros((4, 5, 3), np.uint8)
    b = np.full((4, 5, 3), 200, np.uint8)
    np.testing.assert_array_equal(ops.blend_frames(a, b, 0.0), a)
    np.testing.assert_array_equal(ops.blend_frames(a, b, 1.0), b)
    assert (ops.blend_frames(a, b, 0.5) == 100).all()
    assert (ops.blend_frames(a, b, 0.25) == 50).all()
    np.testing.assert_array_equal(ops.blend_frames(REDDISH, BLUISH[:1, :1].repeat(48, 0).repeat(64, 1), 0.0), REDDISH)
    with pytest.raises(ValueError, match="shape"):
        ops.blend_frames(a, b[:2], 0.5)


def test_float_helpers_round_trip():
    np.testing.assert_array_equal(ops.to_uint8(ops.to_float(REDDISH)), REDDISH)
    assert ops.to_float(REDDISH).dtype == np.float32 and ops.to_float(REDDISH).max() <= 1.0
    np.testing.assert_array_equal(ops.to_uint8(np.array([-0.5, 0.5, 2.0])), [0, 128, 255])
    assert ops.luma_mean(GREY) == pytest.approx(128)


# --- read_image -------------------------------------------------------------------------------------------------------

def write_png(path, rgb_or_rgba: np.ndarray) -> str:
    array = rgb_or_rgba
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array)
    return str(path)


def test_read_image_png_round_trip_and_resize(tmp_path):
    path = write_png(tmp_path / "frame.png", REDDISH)
    np.testing.assert_array_equal(ops.read_image(path), REDDISH)
    small = ops.read_image(path, size=(32, 16))
    assert small.shape == (16, 32, 3) and small.dtype == np.uint8
    big = ops.read_image(path, size=(128, 96))
    assert big.shape == (96, 128, 3)
    # Colours survive resizing (red stays the strongest channel).
    for im in (small, big):
        mean = im.reshape(-1, 3).mean(axis=0)
        assert mean[0] > mean[1] > 0 and mean[0] > mean[2]


def test_read_image_rgba_composites_over_black(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :4, 3] = 255
    rgba[:, 4:, 3] = 0
    out = ops.read_image(write_png(tmp_path / "alpha.png", rgba))
    assert out.shape == (8, 8, 3)
    assert (out[:, :4] == (200, 100, 50)).all()
    assert (out[:, 4:] == 0).all()


def test_read_image_16bit_and_grey(tmp_path):
    rgb16 = np.zeros((4, 4, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 32896  # 128.5 * 257 -> 128 in 8 bits
    rgb16[..., 2] = 257 * 10
    out = ops.read_image(write_png(tmp_path / "deep.png", rgb16))
    assert out.dtype == np.uint8
    assert (out == (255, 128, 10)).all()
    grey = np.full((5, 6), 77, np.uint8)
    assert cv2.imwrite(str(tmp_path / "grey.png"), grey)
    out = ops.read_image(str(tmp_path / "grey.png"))
    assert out.shape == (5, 6, 3) and (out == 77).all()


def test_read_image_exr_is_srgb_encoded(tmp_path):
    linear = np.full((4, 4, 3), 0.2140, np.float32)  # sRGB 0.5
    linear[..., 2] = 1.0
    assert cv2.imwrite(str(tmp_path / "lin.exr"), cv2.cvtColor(linear, cv2.COLOR_RGB2BGR))
    out = ops.read_image(str(tmp_path / "lin.exr"))
    assert (np.abs(out.astype(int) - (128, 128, 255)) <= 1).all()


def test_read_image_errors_name_the_path(tmp_path):
    missing = str(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        ops.read_image(missing)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="junk.png"):
        ops.read_image(str(junk))


# --- read_video_frame -------------------------------------------------------------------------------------------------

VIDEO_COLOURS = [(30 + 18 * i, 220 - 15 * i, (37 * i) % 256) for i in range(12)]
REAL_CAPTURE = cv2.VideoCapture


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("movie") / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 24, (48, 32))
    assert writer.isOpened()
    for rgb in VIDEO_COLOURS:
        writer.write(np.full((32, 48, 3), rgb[::-1], np.uint8))  # BGR
    writer.release()
    yield path
    ops.close_videos()


def assert_colour(frame: np.ndarray, index: int):
    assert frame.dtype == np.uint8 and frame.shape[2] == 3
    mean = frame.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, VIDEO_COLOURS[index], atol=6, err_msg=f"frame {index}")


def test_read_video_frames_in_any_order(movie):
    last = len(VIDEO_COLOURS) - 1
    for index in [0, 1, 2, 6, last, 3, 0, 9, 10, 11, 5]:
        frame = ops.read_video_frame(movie, index)
        assert frame.shape == (32, 48, 3)
        assert_colour(frame, index)


def test_read_video_frame_resizes(movie):
    frame = ops.read_video_frame(movie, 4, size=(24, 16))
    assert frame.shape == (16, 24, 3)
    assert_colour(frame, 4)


def test_read_video_frame_sequential_reuses_capture(movie, monkeypatch):
    ops.read_video_frame(movie, 0)
    opened = []
    monkeypatch.setattr(ops.cv2, "VideoCapture", lambda *a: opened.append(a) or REAL_CAPTURE(*a))
    for index in range(1, 6):
        assert_colour(ops.read_video_frame(movie, index), index)
    assert opened == []


class NoSeekCapture:
    """A capture whose seeks land on the wrong frame, as some codecs' do."""

    def __init__(self, *args):
        self._capture = REAL_CAPTURE(*args)

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_POS_FRAMES:
            self._capture.set(prop, max(0, value - 3))
            return True
        return self._capture.set(prop, value)

    def __getattr__(self, name):
        return getattr(self._capture, name)


def test_read_video_frame_falls_back_when_seek_is_inexact(movie, monkeypatch):
    ops.close_videos()
    monkeypatch.setattr(ops.cv2, "VideoCapture", NoSeekCapture)
    for index in [0, 7, 2, 11, 1, 4]:
        assert_colour(ops.read_video_frame(movie, index), index)
    ops.close_videos()


def test_read_video_frame_errors(movie, tmp_path):
    with pytest.raises(ValueError, match=r"frame 12 .*clip\.avi"):
        ops.read_video_frame(movie, 12)
    with pytest.raises(ValueError, match="clip.avi"):
        ops.read_video_frame(movie, -1)
    # Still usable after a failed read.
    assert_colour(ops.read_video_frame(movie, 2), 2)
    with pytest.raises(FileNotFoundError, match="gone.avi"):
        ops.read_video_frame(str(tmp_path / "gone.avi"), 0)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="junk.avi"):
        ops.read_video_frame(str(junk), 0)


# --- depth ------------------------------------------------------------------------------------------------------------

DEPTH = np.linspace(1.0, 9.0, 6 * 7, dtype=np.float32).reshape(6, 7)


def test_depth_npy_round_trip(tmp_path):
    path = str(tmp_path / "depth.npy")
    ops.write_depth(path, DEPTH)
    out = ops.read_depth(path)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, DEPTH)
    with pytest.raises(ValueError):
        ops.write_depth(str(tmp_path / "depth.png"), DEPTH)


def test_depth_exr_round_trip(tmp_path):
    single = str(tmp_path / "z.exr")
    assert cv2.imwrite(single, DEPTH)
    np.testing.assert_array_equal(ops.read_depth(single), DEPTH)
    three = str(tmp_path / "z3.exr")
    bgr = np.stack([DEPTH * 0, DEPTH * 0 + 5, DEPTH], axis=2)  # R (first RGB channel) holds the depth
    assert cv2.imwrite(three, bgr)
    np.testing.assert_array_equal(ops.read_depth(three), DEPTH)


def test_depth_png16_is_raw(tmp_path):
    raw = (DEPTH * 1000).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "z.png"), raw)
    np.testing.assert_array_equal(ops.read_depth(str(tmp_path / "z.png")), raw.astype(np.float32))


def test_read_depth_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        ops.read_depth(str(tmp_path / "missing.npy"))
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.npy"):
        ops.read_depth(str(bad))


def test_depth_to_control_near_is_bright_background_black():
    depth = np.full((4, 6), np.inf, np.float32)
    depth[:, 0] = 1.0
    depth[:, 1] = 2.0
    depth[:, 2] = 4.0
    depth[:, 3] = 0.0  # invalid
    depth[:, 4] = 1e10  # Blender's "nothing hit"
    depth[:, 5] = np.nan
    out = ops.depth_to_control(depth)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    row = out[0, :, 0]
    assert row[0] == 255 and row[0] > row[1] > row[2]
    assert (row[3:] == 0).all()
    # inverse depth 1, 0.5, 0.25 -> 1, 1/3, 0
    assert row[1] == 85 and row[2] == 0
    assert ops.depth_to_control(depth, size=(12, 8)).shape == (8, 12, 3)


def test_depth_to_control_flat_and_empty():
    assert (ops.depth_to_control(np.full((3, 3), 5.0)) == 255).all()
    assert (ops.depth_to_control(np.full((3, 3), np.inf)) == 0).all()


def test_normal_to_control_axes():
    n = np.zeros((1, 4, 3), np.float32)
    n[0, 0] = (0, 0, 1)  # facing the camera -> blue
    n[0, 1] = (1, 0, 0)  # facing right -> red low (red is left)
    n[0, 2] = (0, 1, 0)  # facing up -> green high
    out = ops.normal_to_control(n)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0], [[128, 128, 255], [0, 128, 128], [128, 255, 128], [128, 128, 128]])


def test_normal_to_control_world_to_camera():
    # Camera rotated 90 degrees about Z: world +X is camera -Y... use its inverse matrix as the caller would.
    angle = np.pi / 2
    camera_to_world = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    world_to_camera = np.linalg.inv(camera_to_world)
    world_up_in_camera = np.array([0.0, 1.0, 0.0])  # camera +Y
    n_world = (camera_to_world @ world_up_in_camera).astype(np.float32).reshape(1, 1, 3)
    out = ops.normal_to_control(n_world * 2, world_to_camera=world_to_camera)  # not unit length: renormalised
    np.testing.assert_array_equal(out[0, 0], [128, 255, 128])


def test_read_float_image_keeps_values_in_rgb_order(tmp_path):
    normals = np.zeros((3, 4, 3), np.float32)
    normals[..., 0] = -0.5  # x
    normals[..., 1] = 0.25  # y
    normals[..., 2] = 0.75  # z
    path = str(tmp_path / "normal.exr")
    assert cv2.imwrite(path, cv2.cvtColor(normals, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(ops.read_float_image(path), normals)
    np.save(tmp_path / "normal.npy", normals)
    np.testing.assert_array_equal(ops.read_float_image(str(tmp_path / "normal.npy")), normals)
    with pytest.raises(FileNotFoundError, match="absent.exr"):
        ops.read_float_image(str(tmp_path / "absent.exr"))


def _write_exr(path, channels: dict) -> str:
    """An EXR with exactly these channels (name -> float32 HxW), as Blender's File Output node writes them."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {k: np.asarray(v, np.float32) for k, v in channels.items()}) as f:
        f.write(str(path))
    return str(path)


def test_blenders_normal_pass_exr_is_read_by_channel_name(tmp_path):
    # Blender's File Output node writes the Normal pass as channels A, X, Y, Z: OpenCV knows R, G, B, A and Y only
    # and read it as (H, W, 2), luminance and alpha, so every normal ControlNet failed.
    x, y, z = np.full((3, 4), -0.6), np.full((3, 4), 0.0), np.full((3, 4), 0.8)
    path = _write_exr(tmp_path / "normal.exr", {"A": np.ones((3, 4)), "X": x, "Y": y, "Z": z})
    values = ops.read_float_image(path)
    assert values.shape == (3, 4, 4)  # X, Y, Z, then A
    np.testing.assert_allclose(values[0, 0], [-0.6, 0.0, 0.8, 1.0], atol=1e-6)
    control = ops.normal_to_control(values[..., :3])
    np.testing.assert_array_equal(control[0, 0], [204, 128, 230])  # red = left: -x


def test_exr_layers_and_single_channels_by_name(tmp_path):
    depth = _write_exr(tmp_path / "layered.exr", {"ViewLayer.Depth.Z": DEPTH})
    np.testing.assert_array_equal(ops.read_depth(depth), DEPTH)
    rgba = _write_exr(tmp_path / "rgba.exr", {"R": DEPTH, "G": DEPTH * 0, "B": DEPTH * 0 + 5, "A": DEPTH * 0 + 1})
    np.testing.assert_array_equal(ops.read_depth(rgba), DEPTH)
    assert ops.read_float_image(rgba).shape == DEPTH.shape + (4,)
    two = _write_exr(tmp_path / "two.exr", {"Normal.X": DEPTH, "Vector.X": DEPTH})
    with pytest.raises(ValueError, match="two.exr.*several layers"):
        ops.read_float_image(two)
    odd = _write_exr(tmp_path / "odd.exr", {"U": DEPTH, "W": DEPTH})
    with pytest.raises(ValueError, match="odd.exr.*U, W"):
        ops.read_depth(odd)
    broken = tmp_path / "broken.exr"
    broken.write_bytes(b"v/1\x01 not an exr")
    with pytest.raises(ValueError, match="broken.exr"):
        ops.read_float_image(str(broken))


def test_without_the_openexr_package_vector_exrs_are_a_clear_error(tmp_path, monkeypatch):
    xyz = _write_exr(tmp_path / "xyz.exr", {"A": DEPTH, "X": DEPTH, "Y": DEPTH, "Z": DEPTH})
    rgb = _write_exr(tmp_path / "rgb.exr", {"R": DEPTH, "G": DEPTH, "B": DEPTH})
    monkeypatch.setitem(__import__("sys").modules, "OpenEXR", None)  # an engine environment made before the pin
    assert ops.read_exr_channels(xyz) is None
    with pytest.raises(ValueError, match=r"xyz.exr.*pip install OpenEXR=="):
        ops.read_float_image(xyz)
    np.testing.assert_array_equal(ops.read_depth(rgb), DEPTH)  # OpenCV still reads R, G, B


def test_to_pil():
    image = ops.to_pil(REDDISH)
    assert image.mode == "RGB" and image.size == (64, 48)
    np.testing.assert_array_equal(np.asarray(image), REDDISH)
    assert ops.to_pil(REDDISH[..., 0]).mode == "L"


def test_canny_finds_square_edges():
    image = np.zeros((64, 64, 3), np.uint8)
    image[20:44, 20:44] = (255, 255, 255)
    edges = ops.canny(image)
    assert edges.shape == (64, 64, 3) and edges.dtype == np.uint8
    assert set(np.unique(edges)) <= {0, 255}
    grey = edges[..., 0]
    border = np.zeros_like(grey, bool)
    border[18:46, 18:46] = True
    border[23:41, 23:41] = False
    assert grey[border].sum() > 0
    assert (grey[~border] == 0).all()  # interior and far background black
    for row in (25, 32, 38):
        assert grey[row, 18:23].max() == 255 and grey[row, 41:46].max() == 255


def test_preprocess_control_dispatch():
    image = REDDISH
    assert ops.preprocess_control(image, "NONE") is image
    np.testing.assert_array_equal(ops.preprocess_control(image, "canny", low=50, high=150), ops.canny(image, 50, 150))
    np.testing.assert_array_equal(ops.preprocess_control(image, "INVERT"), 255 - image)
    np.testing.assert_array_equal(ops.preprocess_control(DEPTH, "DEPTH"), ops.depth_to_control(DEPTH))
    normals = np.zeros((2, 2, 3), np.float32)
    normals[..., 2] = 1
    np.testing.assert_array_equal(ops.preprocess_control(normals, "NORMAL"), ops.normal_to_control(normals))
    assert ops.preprocess_control(image, "NONE", size=(32, 24)).shape == (24, 32, 3)
    assert ops.preprocess_control(image, "CANNY", size=(32, 24), low=10).shape == (24, 32, 3)
    with pytest.raises(ValueError, match="preprocessor"):
        ops.preprocess_control(image, "SEGMENT")
    with pytest.raises(TypeError, match="threshold"):
        ops.preprocess_control(image, "CANNY", threshold=3)
    assert set(ops.PREPROCESSORS) == {"NONE", "CANNY", "DEPTH", "NORMAL", "INVERT"}
    assert ops.COLOR_MODES == ("NONE", "LAB", "HSV", "RGB")


def test_module_does_not_import_bpy():
    import ast

    with open(ops.__file__, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "bpy" not in imported and "cv2" in imported
    assert os.environ.get("OPENCV_IO_ENABLE_OPENEXR") == "1"

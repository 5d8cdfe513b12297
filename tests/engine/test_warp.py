"""engine.warp: 2D motion matrices and warps, Blender intrinsics, Deforum camera deltas, depth reprojection.

Synthetic images only (Gaussian dots, column ramps); every expectation is computed independently of the module
(by hand or from the scene's geometry), not by calling the code under test a second way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import warp

W, H = 64, 48
FLIP3 = np.diag([1.0, -1.0, -1.0])  # Blender camera frame <-> OpenCV camera frame


# ------------------------------------------------------------------------------------------------ helpers

def dot_image(x: float, y: float, width: int = W, height: int = H, sigma: float = 1.2, channels: int = 3):
    """A float32 image, black with one Gaussian dot centred at pixel coordinates (x, y)."""
    us, vs = np.meshgrid(np.arange(width), np.arange(height))
    g = np.exp(-((us - x) ** 2 + (vs - y) ** 2) / (2 * sigma ** 2)).astype(np.float32)
    return np.repeat(g[:, :, None], channels, axis=2)


def find_dot(image: np.ndarray) -> tuple[float, float]:
    """Sub-pixel position of the brightest dot: the intensity centroid of a 7x7 window around the maximum."""
    g = image[..., 0] if image.ndim == 3 else image
    j, i = np.unravel_index(np.argmax(g), g.shape)
    j0, j1, i0, i1 = max(j - 3, 0), min(j + 4, g.shape[0]), max(i - 3, 0), min(i + 4, g.shape[1])
    win = g[j0:j1, i0:i1].astype(np.float64)
    win = np.clip(win - 0.05 * win.max(), 0, None)
    vs, us = np.mgrid[j0:j1, i0:i1]
    return float((win * us).sum() / win.sum()), float((win * vs).sum() / win.sum())


def apply(m: np.ndarray, x: float, y: float) -> tuple[float, float]:
    p = m @ np.array([x, y, 1.0])
    return p[0] / p[2], p[1] / p[2]


def blender_camera(matrix_world=None, **kw) -> dict:
    cam = {"matrix_world": (np.eye(4) if matrix_world is None else np.asarray(matrix_world)).tolist(),
           "type": "PERSP", "lens": 50.0, "sensor_width": 36.0, "sensor_height": 24.0, "sensor_fit": "AUTO",
           "shift_x": 0.0, "shift_y": 0.0, "clip_start": 0.1, "clip_end": 100.0}
    cam.update(kw)
    return cam


def pose(rot_deg_xyz=(0.0, 0.0, 0.0), loc=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A Blender camera-to-world matrix: rotations about world X, then Y, then Z (XYZ Euler), then location."""
    ax, ay, az = (math.radians(a) for a in rot_deg_xyz)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx
    m[:3, 3] = loc
    return m


def project(K: np.ndarray, cam_to_world: np.ndarray, point) -> tuple[float, float]:
    """Pixel of a world point: into Blender camera space, flip to x right / y down / z forward, then K."""
    r, c = cam_to_world[:3, :3], cam_to_world[:3, 3]
    p = FLIP3 @ (r.T @ (np.asarray(point, float) - c))
    assert p[2] > 0
    q = K @ (p / p[2])
    return q[0], q[1]


def plane_depth(K: np.ndarray, cam_to_world: np.ndarray, plane_z: float, width=W, height=H) -> np.ndarray:
    """Planar (Z-pass) depth of the world plane z = plane_z seen from a camera, per pixel, analytically."""
    us, vs = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays = np.linalg.inv(K) @ np.stack([us.ravel(), vs.ravel(), np.ones(us.size)])  # z = 1: planar units
    world_dirs = cam_to_world[:3, :3] @ FLIP3 @ rays
    t = (plane_z - cam_to_world[2, 3]) / world_dirs[2]
    return t.reshape(height, width)


def ray_lengths(K: np.ndarray, width=W, height=H) -> np.ndarray:
    us, vs = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays = np.linalg.inv(K) @ np.stack([us.ravel(), vs.ravel(), np.ones(us.size)])
    return np.linalg.norm(rays, axis=0).reshape(height, width)


# ------------------------------------------------------------------------------------------------------ 2D

@pytest.mark.parametrize("border", warp.BORDERS)
@pytest.mark.parametrize("motion", [{}, {"zoom": 1.0, "angle": 0.0, "translation_x": 0, "translation_y": 0.0,
                                         "transform_center_x": 0.2, "transform_center_y": 0.9}])
def test_zero_motion_2d_is_exact_identity(border, motion):
    rng = np.random.default_rng(0)
    for img in (rng.integers(0, 256, (H, W, 3), dtype=np.uint8), rng.random((H, W, 4), dtype=np.float32)):
        out = warp.warp_2d(img, motion, border)
        assert out.dtype == img.dtype and out.shape == img.shape
        assert np.array_equal(out, img)


def test_zero_motion_matrix_is_identity_and_warps_to_identity():
    import cv2
    m = warp.matrix_2d(W, H, {"transform_center_x": 0.13, "transform_center_y": 0.77})
    assert m.dtype == np.float64 and m.shape == (3, 3)
    assert np.array_equal(m, np.eye(3))
    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert np.array_equal(cv2.warpAffine(img, m[:2], (W, H), flags=cv2.INTER_LINEAR), img)


def test_matrix_2d_by_hand():
    # translation only
    m = warp.matrix_2d(W, H, {"translation_x": 5, "translation_y": -3})
    assert np.allclose(m, [[1, 0, 5], [0, 1, -3], [0, 0, 1]])
    # 90 degrees counter-clockwise on screen about the centre (32, 24): right of centre -> above it
    m = warp.matrix_2d(W, H, {"angle": 90})
    assert np.allclose(apply(m, 42, 24), (32, 14))
    assert np.allclose(apply(m, 32, 14), (22, 24))  # above -> left
    # zoom 2 about (16, 36): the centre stays, offsets double
    m = warp.matrix_2d(W, H, {"zoom": 2, "transform_center_x": 0.25, "transform_center_y": 0.75})
    assert np.allclose(apply(m, 16, 36), (16, 36))
    assert np.allclose(apply(m, 20, 30), (24, 24))
    # rotate/zoom about the centre FIRST, then translate (translation is not rotated or zoomed)
    m = warp.matrix_2d(W, H, {"zoom": 2, "angle": 90, "translation_x": 3, "translation_y": 4})
    assert np.allclose(apply(m, 33, 24), (32 + 3, 24 - 2 + 4))


@pytest.mark.parametrize("motion, src", [
    ({"translation_x": 5.5, "translation_y": -3.25}, (20.0, 30.0)),
    ({"angle": 90}, (42.0, 24.0)),
    ({"zoom": 2.0, "transform_center_x": 0.25, "transform_center_y": 0.75}, (20.0, 30.0)),
    ({"zoom": 1.3, "angle": 30.0, "translation_x": 4.0, "translation_y": -6.0,
      "transform_center_x": 0.4, "transform_center_y": 0.6}, (34.0, 22.0)),
    ({"zoom": 0.8, "angle": -20.0, "translation_x": -2.5, "translation_y": 1.5}, (45.0, 14.0)),
])
def test_warp_2d_moves_a_dot_where_the_matrix_says(motion, src):
    img = dot_image(*src)
    out = warp.warp_2d(img, motion)
    expected = apply(warp.matrix_2d(W, H, motion), *src)
    assert 2 < expected[0] < W - 3 and 2 < expected[1] < H - 3
    found = find_dot(out)
    assert abs(found[0] - expected[0]) < 0.5 and abs(found[1] - expected[1]) < 0.5, (found, expected)


def test_positive_angle_is_counter_clockwise_on_screen():
    out = warp.warp_2d(dot_image(42.0, 24.0), {"angle": 10})  # right of the centre (32, 24)
    x, y = find_dot(out)
    assert y < 24 - 1.0  # moved UP
    assert x < 42


def test_positive_translation_y_moves_content_down_and_x_right():
    x, y = find_dot(warp.warp_2d(dot_image(30.0, 20.0), {"translation_y": 6}))
    assert abs(y - 26) < 0.3 and abs(x - 30) < 0.3
    x, y = find_dot(warp.warp_2d(dot_image(30.0, 20.0), {"translation_x": 6}))
    assert abs(x - 36) < 0.3 and abs(y - 20) < 0.3


def test_zoom_above_one_grows_content():
    img = np.zeros((H, W), np.float32)
    img[20:28, 28:36] = 1.0
    out = warp.warp_2d(img, {"zoom": 1.5})
    assert (out > 0.5).sum() > 1.8 * (img > 0.5).sum()


def test_border_modes_at_the_edges():
    width, height = 16, 8
    cols = (np.arange(width) * 10 + 5).astype(np.uint8)
    img = np.repeat(np.tile(cols, (height, 1))[:, :, None], 3, axis=2)
    outs = {b: warp.warp_2d(img, {"translation_x": 3}, b) for b in warp.BORDERS}
    for out in outs.values():  # the interior is the plain shift
        assert np.array_equal(out[:, 3:], img[:, :-3])
    assert np.array_equal(outs["REPLICATE"][0, :3, 0], [cols[0]] * 3)  # the edge column repeats
    assert np.array_equal(outs["WRAP"][0, :3, 0], cols[-3:])  # the opposite edge comes in
    assert np.array_equal(outs["REFLECT"][0, :3, 0], cols[[2, 1, 0]])  # mirrored about the edge
    # and at the bottom/right for a move the other way
    rep = warp.warp_2d(img, {"translation_x": -2}, "REPLICATE")
    wrp = warp.warp_2d(img, {"translation_x": -2}, "WRAP")
    assert np.array_equal(rep[0, -2:, 0], [cols[-1]] * 2)
    assert np.array_equal(wrp[0, -2:, 0], cols[:2])


@pytest.mark.parametrize("shape", [(H, W), (H, W, 1), (H, W, 6)])
def test_warp_2d_keeps_shape_and_dtype(shape):
    img = np.random.default_rng(2).random(shape, dtype=np.float32)
    out = warp.warp_2d(img, {"translation_x": 2, "angle": 3})
    assert out.shape == img.shape and out.dtype == np.float32
    # every channel is warped the same way
    if len(shape) == 3 and shape[2] == 6:
        ref = warp.warp_2d(np.ascontiguousarray(img[:, :, 5]), {"translation_x": 2, "angle": 3})
        assert np.allclose(out[:, :, 5], ref)


def test_border_mode_constants():
    import cv2
    assert warp.border_mode("REPLICATE") == cv2.BORDER_REPLICATE
    assert warp.border_mode("wrap") == cv2.BORDER_WRAP
    assert warp.border_mode("Reflect") == cv2.BORDER_REFLECT
    with pytest.raises(ValueError, match="border"):
        warp.border_mode("zeros")


def test_2d_errors():
    img = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(ValueError, match="border"):
        warp.warp_2d(img, {}, "CONSTANT")
    with pytest.raises(ValueError, match="zoom"):
        warp.warp_2d(img, {"zoom": 0})
    with pytest.raises(ValueError, match="angle"):
        warp.matrix_2d(W, H, {"angle": "a lot"})
    with pytest.raises(ValueError, match="finite"):
        warp.matrix_2d(W, H, {"translation_x": float("nan")})
    with pytest.raises(ValueError, match="width"):
        warp.matrix_2d(0, H, {})
    with pytest.raises(ValueError, match="dtype"):
        warp.warp_2d(np.zeros((H, W, 3), np.int64), {})


# ---------------------------------------------------------------------------------------------- intrinsics

def test_intrinsics_auto_landscape_by_hand():
    K = warp.intrinsics(blender_camera(), 64, 48)
    f = 50 / 36 * 64
    assert np.allclose(K, [[f, 0, 31.5], [0, f, 23.5], [0, 0, 1]])


def test_intrinsics_fits():
    # AUTO on a portrait image: sensor_width spans the larger dimension, the height
    K = warp.intrinsics(blender_camera(), 48, 64)
    assert np.isclose(K[0, 0], 50 / 36 * 64) and np.isclose(K[1, 1], 50 / 36 * 64)
    # HORIZONTAL: sensor_width across the width, whatever the shape
    K = warp.intrinsics(blender_camera(sensor_fit="HORIZONTAL"), 48, 64)
    assert np.isclose(K[0, 0], 50 / 36 * 48)
    # VERTICAL: sensor_height across the height
    K = warp.intrinsics(blender_camera(sensor_fit="VERTICAL"), 64, 48)
    assert np.isclose(K[0, 0], 50 / 24 * 48) and np.isclose(K[1, 1], 100.0)
    assert np.allclose(K[:2, 2], (31.5, 23.5))


def test_intrinsics_shift_moves_the_principal_point():
    K = warp.intrinsics(blender_camera(shift_x=0.1), 64, 48)
    assert np.isclose(K[0, 2], 31.5 - 6.4) and np.isclose(K[1, 2], 23.5)  # more to the right seen: pp LEFT
    K = warp.intrinsics(blender_camera(shift_y=0.1), 64, 48)
    assert np.isclose(K[1, 2], 23.5 + 6.4) and np.isclose(K[0, 2], 31.5)  # more above seen: pp DOWN
    K = warp.intrinsics(blender_camera(shift_y=0.1), 48, 64)  # AUTO portrait: units of the height
    assert np.isclose(K[1, 2], 31.5 + 6.4)
    K = warp.intrinsics(blender_camera(shift_x=0.1, sensor_fit="VERTICAL"), 64, 48)  # units of the fitted height
    assert np.isclose(K[0, 2], 31.5 - 4.8)


def test_intrinsics_projection_matches_blenders_view_frame():
    """world_to_camera_view-style: normalised position in the shifted view frame at distance 1, then pixels."""
    lens, sensor, sx, sy = 35.0, 32.0, 0.05, -0.08
    cam_to_world = pose((70, 10, 30), (1.0, -2.0, 0.5))
    cam = blender_camera(cam_to_world, lens=lens, sensor_width=sensor, shift_x=sx, shift_y=sy)
    K = warp.intrinsics(cam, 64, 48)
    point = cam_to_world[:3, :3] @ np.array([0.7, -0.4, -5.0]) + cam_to_world[:3, 3]  # known camera-space point
    x, y, z = np.linalg.inv(cam_to_world[:3, :3]) @ (point - cam_to_world[:3, 3])
    half_w = sensor / lens / 2  # AUTO, width >= height: the sensor spans the width at distance 1
    half_h = half_w * 48 / 64
    nx = (x / -z - sx * sensor / lens + half_w) / (2 * half_w)  # 0 left edge .. 1 right edge
    ny = (y / -z - sy * sensor / lens + half_h) / (2 * half_h)  # 0 bottom edge .. 1 top edge
    expected = (nx * 64 - 0.5, (1 - ny) * 48 - 0.5)  # pixel centres at integers, rows down
    assert np.allclose(project(K, cam_to_world, point), expected)


def test_intrinsics_no_camera_is_horizontal_fov():
    K = warp.intrinsics(None, 64, 48, fov=90.0)
    assert np.allclose(K, [[32, 0, 31.5], [0, 32, 23.5], [0, 0, 1]])
    K = warp.intrinsics(None, 64, 48)
    assert np.isclose(K[0, 0], 32 / math.tan(math.radians(20)))


def test_intrinsics_errors():
    with pytest.raises(ValueError, match="only perspective cameras"):
        warp.intrinsics(blender_camera(type="ORTHO"), 64, 48)
    with pytest.raises(ValueError, match="only perspective cameras"):
        warp.intrinsics(blender_camera(type="PANO"), 64, 48)
    with pytest.raises(ValueError, match="sensor_fit"):
        warp.intrinsics(blender_camera(sensor_fit="DIAGONAL"), 64, 48)
    with pytest.raises(ValueError, match="fov"):
        warp.intrinsics(None, 64, 48, fov=180)
    with pytest.raises(ValueError, match="lens"):
        warp.intrinsics(blender_camera(lens=0), 64, 48)


# ------------------------------------------------------------------------------------------- reprojection

def test_identity_reprojection_returns_the_input():
    rng = np.random.default_rng(3)
    K = warp.intrinsics(blender_camera(shift_x=0.03), W, H)
    cam = pose((80, -5, 40), (3.0, -1.0, 2.0))
    depth = rng.uniform(0.5, 30.0, (H, W))
    depth[::7, ::5] = 0.0
    depth[3, :] = np.inf
    depth[5, :] = 1e10
    depth[9, :9] = np.nan
    img_f = rng.random((H, W, 3), dtype=np.float32)
    img_u = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    for kind in ("planar", "radial"):
        for d in (depth, None):
            out, mask = warp.reproject(img_f, cam, cam, K, K, depth=d, depth_kind=kind)
            assert out.dtype == np.float32 and out.shape == img_f.shape
            assert np.abs(out - img_f).max() < 1e-4
            assert mask.dtype == bool and mask.shape == (H, W) and mask.all()
            out, mask = warp.reproject(img_u, cam, cam, K, K, depth=d, depth_kind=kind, border="WRAP")
            assert np.array_equal(out, img_u) and mask.all()


def _scene_case(cur_pose):
    """Plane z = -10 (world) with a dot at P, seen by a previous camera at the origin looking down -Z."""
    K = warp.intrinsics(blender_camera(), W, H)
    prev = np.eye(4)
    P = np.array([0.3, -0.2, -10.0])
    img = dot_image(*project(K, prev, P))
    expected = project(K, cur_pose, P)
    return K, prev, img, expected


@pytest.mark.parametrize("cur_pose", [
    pose(loc=(1.0, 0.0, 0.0)),
    pose((0.0, 5.0, 0.0)),
    pose((3.0, -4.0, 2.0), (-0.8, 0.5, 1.5)),
], ids=["translate-x", "rotate-y-5", "both"])
def test_reprojection_lands_dots_where_geometry_says(cur_pose):
    K, prev, img, expected = _scene_case(cur_pose)
    assert 3 < expected[0] < W - 4 and 3 < expected[1] < H - 4
    planar = plane_depth(K, cur_pose, -10.0)
    out_d, mask_d = warp.reproject(img, prev, cur_pose, K, K, depth=planar)
    found = find_dot(out_d)
    assert abs(found[0] - expected[0]) < 1.0 and abs(found[1] - expected[1]) < 1.0, (found, expected)
    # the dot really moved (the test would catch a no-op warp)
    assert math.dist(find_dot(img), expected) > 3.0
    # no depth: a plane 10 in front of the previous camera is the same scene
    out_n, mask_n = warp.reproject(img, prev, cur_pose, K, K, depth=None, plane_distance=10.0)
    assert np.abs(out_n - out_d).max() < 1e-3
    assert np.array_equal(mask_n, mask_d)
    # radial depth of the same scene gives the same warp
    out_r, mask_r = warp.reproject(img, prev, cur_pose, K, K, depth=planar * ray_lengths(K), depth_kind="radial")
    assert np.abs(out_r - out_d).max() < 1e-3
    assert np.array_equal(mask_r, mask_d)
    # and a wrong depth does NOT (the depth really matters when the camera moves; a pure rotation ignores it)
    if np.abs(cur_pose[:3, 3]).max() > 0:
        out_wrong, _ = warp.reproject(img, prev, cur_pose, K, K, depth=planar * 3, depth_kind="planar")
        assert np.abs(out_wrong - out_d).max() > 0.1


def test_reprojection_with_different_intrinsics():
    K_prev = warp.intrinsics(blender_camera(lens=35.0), W, H)
    K_cur = warp.intrinsics(blender_camera(lens=50.0, shift_x=0.05), W, H)
    prev, cur = np.eye(4), pose((0, 0, 0), (0.0, 0.0, -2.0))
    P = np.array([-0.6, 0.4, -10.0])
    img = dot_image(*project(K_prev, prev, P))
    out, _ = warp.reproject(img, prev, cur, K_prev, K_cur, depth=plane_depth(K_cur, cur, -10.0))
    expected = project(K_cur, cur, P)
    assert math.dist(find_dot(out), expected) < 1.0


def test_far_pixels_only_rotate():
    """Infinitely far depth: a translation changes nothing, a rotation still pans."""
    K = warp.intrinsics(None, W, H, fov=50)
    img = dot_image(40.0, 20.0)
    far = np.full((H, W), np.inf)
    out, mask = warp.reproject(img, np.eye(4), pose(loc=(5.0, 2.0, -3.0)), K, K, depth=far)
    assert np.abs(out - img).max() < 1e-4 and mask.all()
    for bad in (0.0, -1.0, 2e9, np.nan):
        out, _ = warp.reproject(img, np.eye(4), pose(loc=(5.0, 2.0, -3.0)), K, K, depth=np.full((H, W), bad))
        assert np.abs(out - img).max() < 1e-4
    cur = pose((0.0, 4.0, 0.0))
    out, _ = warp.reproject(img, np.eye(4), cur, K, K, depth=far)
    direction = np.array([40.0 - K[0, 2], 20.0 - K[1, 2], K[0, 0]])  # the dot's ray (OpenCV frame)
    expected = project(K, cur, FLIP3 @ direction * 1e6)
    assert math.dist(find_dot(out), expected) < 1.0


def test_mask_false_behind_and_outside():
    K = warp.intrinsics(None, W, H)
    img = np.random.default_rng(4).random((H, W, 3), dtype=np.float32)
    behind = pose((0.0, 180.0, 0.0))  # looking backwards: everything it sees is behind the previous camera
    for d in (np.full((H, W), 5.0), np.full((H, W), np.inf), None):
        out, mask = warp.reproject(img, np.eye(4), behind, K, K, depth=d)
        assert not mask.any()
        assert out.shape == img.shape and np.isfinite(out).all()
    # a sideways move reveals a strip on one side: False there, True elsewhere
    cur = pose(loc=(1.0, 0.0, 0.0))  # moves right: content moves left, the right edge is new
    out, mask = warp.reproject(img, np.eye(4), cur, K, K, depth=np.full((H, W), 10.0))
    shift = K[0, 0] * 1.0 / 10.0
    assert not mask[:, -int(shift) + 1:].any()
    assert mask[:, : W - int(math.ceil(shift)) - 1].all()
    # border modes fill the revealed strip differently but agree inside
    out_wrap, _ = warp.reproject(img, np.eye(4), cur, K, K, depth=np.full((H, W), 10.0), border="WRAP")
    assert np.allclose(out_wrap[mask], out[mask])
    assert np.abs(out_wrap[~mask] - out[~mask]).max() > 0.1


@pytest.mark.parametrize("shape", [(H, W), (H, W, 1), (H, W, 5)])
def test_reproject_keeps_shape(shape):
    K = warp.intrinsics(None, W, H)
    img = np.random.default_rng(5).random(shape, dtype=np.float32)
    out, mask = warp.reproject(img, np.eye(4), pose((1.0, 2.0, 0.0)), K, K)
    assert out.shape == shape and out.dtype == np.float32 and mask.shape == (H, W)


def test_reproject_errors():
    K = warp.intrinsics(None, W, H)
    img = np.zeros((H, W, 3), np.float32)
    with pytest.raises(ValueError, match="depth must be HxW"):
        warp.reproject(img, np.eye(4), np.eye(4), K, K, depth=np.ones((W, H)))
    with pytest.raises(ValueError, match="depth_kind"):
        warp.reproject(img, np.eye(4), np.eye(4), K, K, depth=np.ones((H, W)), depth_kind="z")
    with pytest.raises(ValueError, match="border"):
        warp.reproject(img, np.eye(4), np.eye(4), K, K, border="ZERO")
    with pytest.raises(ValueError, match="plane_distance"):
        warp.reproject(img, np.eye(4), np.eye(4), K, K, plane_distance=0)
    with pytest.raises(ValueError, match="4x4"):
        warp.reproject(img, np.eye(3), np.eye(4), K, K)
    with pytest.raises(ValueError, match="3x3"):
        warp.reproject(img, np.eye(4), np.eye(4), np.eye(4), K)


# ------------------------------------------------------------------------------------ Deforum camera motion

def test_deforum_delta_zero_is_identity():
    assert np.array_equal(warp.deforum_camera_delta({}), np.eye(4))
    assert np.array_equal(warp.deforum_camera_delta({"translation_x": 0, "rotation_3d_y": 0.0, "fov": 70}),
                          np.eye(4))


def test_deforum_delta_axes():
    d = warp.deforum_camera_delta({"translation_z": 200})
    assert np.allclose(d[:3, :3], np.eye(3)) and np.allclose(d[:3, 3], (0, 0, -1))  # forward = local -Z
    assert np.allclose(warp.deforum_camera_delta({"translation_x": 200})[:3, 3], (1, 0, 0))  # right
    assert np.allclose(warp.deforum_camera_delta({"translation_y": 100})[:3, 3], (0, 0.5, 0))  # up
    forward = lambda m: -warp.deforum_camera_delta(m)[:3, 2]  # noqa: E731 - the camera's view direction
    assert np.allclose(forward({"rotation_3d_y": 90}), (1, 0, 0))  # pans right
    assert np.allclose(forward({"rotation_3d_x": 90}), (0, 1, 0))  # tilts up
    right = warp.deforum_camera_delta({"rotation_3d_z": 90})[:3, 0]
    assert np.allclose(right, (0, -1, 0))  # rolls clockwise (seen from behind the camera)
    for m in ({"rotation_3d_x": 17, "rotation_3d_y": -33, "rotation_3d_z": 71, "translation_z": 9},):
        r = warp.deforum_camera_delta(m)[:3, :3]
        assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)


def test_deforum_rotation_y_moves_a_point_left():
    K = warp.intrinsics(None, W, H)
    cur = warp.deforum_camera_delta({"rotation_3d_y": 5})
    x, y = project(K, cur, (0.0, 0.0, -10.0))  # straight ahead of the previous camera
    assert x < K[0, 2] - 5 and abs(y - K[1, 2]) < 1e-6
    x, y = project(K, warp.deforum_camera_delta({"rotation_3d_x": 5}), (0.0, 0.0, -10.0))
    assert y > K[1, 2] + 5  # tilting up moves content down


def test_deforum_translation_z_grows_a_centred_plane():
    img = np.zeros((H, W, 3), np.float32)
    img[16:32, 24:40] = 1.0  # 16 x 16 around the centre
    # 2 units forward towards a plane 10 away: content scales by 10 / 8
    out, mask = warp.warp_3d(img, None, None, {"translation_z": 400}, W, H, plane_distance=10.0)
    assert (out[..., 0] > 0.5).sum() > 1.15 * (img[..., 0] > 0.5).sum()
    assert mask.all()  # moving in never reveals anything outside
    out, mask = warp.warp_3d(img, None, None, {"translation_z": -400}, W, H, plane_distance=10.0)
    assert (out[..., 0] > 0.5).sum() < 0.9 * (img[..., 0] > 0.5).sum()
    assert not mask.all()  # moving back shows beyond the old frame


def _deforum_flat_offset(motion: dict, u: float, v: float, width=W, height=H) -> tuple[float, float]:
    """Deforum's own flat 3D warp (transform_image_3d, depth off, aspect_ratio 1), written out in numpy for one
    pixel: the world point (grid x, grid y, 1) projected by the still and the moved pytorch3d-style camera
    (row vectors, X @ R + T, R = Rx Ry Rz, T = (-tx, ty, -tz) / 200); returns the content motion in pixels."""
    f = 1.0 / math.tan(math.radians(motion.get("fov", 40.0)) / 2)
    ax, ay, az = (math.radians(motion.get(k, 0.0)) for k in ("rotation_3d_x", "rotation_3d_y", "rotation_3d_z"))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    R = rx @ ry @ rz
    T = np.array([-motion.get("translation_x", 0.0), motion.get("translation_y", 0.0),
                  -motion.get("translation_z", 0.0)]) / 200.0
    g = np.array([(2 * u + 1) / width - 1, (2 * v + 1) / height - 1, 1.0])  # grid_sample, align_corners=False
    new = g @ R + T
    offset = f * new[:2] / new[2] - f * g[:2] / g[2]
    return offset[0] * width / 2, offset[1] * height / 2


@pytest.mark.parametrize("motion", [
    {"translation_x": 20}, {"translation_x": -20}, {"translation_y": 20}, {"translation_y": -20},
    {"translation_z": 40}, {"translation_z": -40},
    {"rotation_3d_x": 5}, {"rotation_3d_x": -5}, {"rotation_3d_y": 5}, {"rotation_3d_y": -5},
    {"rotation_3d_z": 8}, {"rotation_3d_z": -8},
])
def test_deforum_motion_moves_content_the_way_deforum_does(motion):
    src = (44.0, 31.0)  # off-centre, so zoom and roll move it in both axes
    out, _ = warp.warp_3d(dot_image(*src), None, None, motion, W, H, plane_distance=1.0)
    moved = np.subtract(find_dot(out), src)
    ref = _deforum_flat_offset(motion, *src)
    checked = 0
    for ours, theirs in zip(moved, ref):
        # the main motion only: Deforum's flat world points are not on the pixels' rays, so its small
        # cross-axis perspective effects differ from exact geometry
        if abs(theirs) > 0.75 and abs(theirs) > 0.3 * np.abs(ref).max():
            assert np.sign(ours) == np.sign(theirs) and abs(ours) > 0.3, (moved, ref)
            checked += 1
    assert checked
    if "translation_x" in motion:  # with plane_distance 1, a Deforum pan has Deforum's size in pixels
        assert abs(moved[0] - ref[0]) < 0.1 * abs(ref[0]) + 0.3, (moved, ref)


def test_warp_3d_scene_cameras_match_reproject():
    cam_prev = blender_camera(pose(loc=(0, 0, 0)))
    cam_cur = blender_camera(pose((0, 3, 0), (0.5, 0, 0)), lens=40.0)
    img = dot_image(30.0, 20.0)
    out, mask = warp.warp_3d(img, cam_prev, cam_cur, {"translation_x": 999}, W, H, plane_distance=10.0)
    ref, ref_mask = warp.reproject(img, np.asarray(cam_prev["matrix_world"]), np.asarray(cam_cur["matrix_world"]),
                                   warp.intrinsics(cam_prev, W, H), warp.intrinsics(cam_cur, W, H))
    assert np.array_equal(out, ref) and np.array_equal(mask, ref_mask)
    assert np.abs(out - img).max() > 0.1


def test_warp_3d_scaled_camera_object_is_ignored():
    scaled = pose((0, 3, 0), (0.5, 0, 0))
    scaled[:3, :3] *= 2.5
    img = dot_image(30.0, 20.0)
    depth = np.full((H, W), 4.0)
    a, _ = warp.warp_3d(img, blender_camera(), blender_camera(scaled), {}, W, H, depth=depth)
    b, _ = warp.warp_3d(img, blender_camera(), blender_camera(pose((0, 3, 0), (0.5, 0, 0))), {}, W, H, depth=depth)
    assert np.allclose(a, b, atol=1e-5)
    assert np.abs(b - img).max() > 0.1


def test_warp_3d_errors():
    img = np.zeros((H, W, 3), np.float32)
    with pytest.raises(ValueError, match="both"):
        warp.warp_3d(img, blender_camera(), None, {}, W, H)
    with pytest.raises(ValueError, match="width x height"):
        warp.warp_3d(img, None, None, {}, H, W)
    with pytest.raises(ValueError, match="only perspective"):
        warp.warp_3d(img, blender_camera(type="ORTHO"), blender_camera(), {}, W, H)
    with pytest.raises(ValueError, match="matrix_world"):
        warp.warp_3d(img, {"type": "PERSP"}, blender_camera(), {}, W, H)


# --------------------------------------------------------------------------------------- camera paths (feedback)

MOTIONS = [{"translation_z": 30, "fov": 40}, {"translation_x": 40, "rotation_3d_y": 2, "fov": 40},
           {"translation_z": 60, "rotation_3d_z": 3, "fov": 55}, {"translation_y": -30, "rotation_3d_x": 1.5, "fov": 35}]


def test_deforum_path_accumulates_the_deltas_and_each_frame_has_its_fov():
    path = warp.CameraPath.deforum(MOTIONS, W, H)
    assert len(path) == 4 and np.array_equal(path.poses[0], np.eye(4))  # the first frame's motion moves nothing
    expected = np.eye(4)
    for i in range(1, 4):
        expected = expected @ warp.deforum_camera_delta(MOTIONS[i])
        assert np.array_equal(path.poses[i], expected)
    for k, motion in zip(path.intrinsics, MOTIONS):
        assert np.array_equal(k, warp.intrinsics(None, W, H, motion["fov"]))


def test_a_path_warps_between_any_two_frames_in_one_step():
    """Frame 1 -> 3 (a cadence in-between's key) and back: one reprojection with those two frames' poses and K."""
    path = warp.CameraPath.deforum(MOTIONS, W, H)
    img = dot_image(30.0, 20.0)
    for source, target in ((1, 3), (3, 1), (0, 2)):
        out, mask = path.reproject(img, source, target, plane_distance=1.0, border="REFLECT")
        ref, ref_mask = warp.reproject(img, path.poses[source], path.poses[target], path.intrinsics[source],
                                       path.intrinsics[target], plane_distance=1.0, border="REFLECT")
        assert np.array_equal(out, ref) and np.array_equal(mask, ref_mask)
    assert np.array_equal(path.reproject(img, 2, 2, plane_distance=1.0)[0], img)


def test_warp_3d_is_a_two_frame_path():
    img = dot_image(30.0, 20.0)
    motion = MOTIONS[2]
    out, mask = warp.warp_3d(img, None, None, motion, W, H, plane_distance=1.0)
    ref, ref_mask = warp.CameraPath.deforum([motion, motion], W, H).reproject(img, 0, 1, plane_distance=1.0)
    assert np.array_equal(out, ref) and np.array_equal(mask, ref_mask)
    cams = [blender_camera(pose(loc=(0, 0, 0))), blender_camera(pose((0, 3, 0), (0.5, 0, 0)), lens=40.0)]
    depth = np.full((H, W), 4.0)
    out, mask = warp.warp_3d(img, *cams, None, W, H, depth=depth)
    ref, ref_mask = warp.CameraPath.scene(cams, W, H).reproject(img, 0, 1, depth=depth)
    assert np.array_equal(out, ref) and np.array_equal(mask, ref_mask)


def test_scene_path_takes_each_camera_and_checks_its_records():
    cams = [blender_camera(pose(loc=(0.2 * i, 0, 0)), lens=30.0 + i) for i in range(3)]
    path = warp.CameraPath.scene(cams, W, H)
    for i, cam in enumerate(cams):
        assert np.array_equal(path.poses[i], np.asarray(cam["matrix_world"]))
        assert np.array_equal(path.intrinsics[i], warp.intrinsics(cam, W, H))
    with pytest.raises(ValueError, match="camera 1 .*matrix_world"):
        warp.CameraPath.scene([cams[0], {"type": "PERSP"}], W, H)
    with pytest.raises(ValueError, match="one K per pose"):
        warp.CameraPath([np.eye(4)], [])

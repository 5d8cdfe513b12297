"""Frame-to-frame geometry for the feedback animation mode: 2D image motion and 3D camera reprojection.

numpy + OpenCV only (``cv2.warpAffine`` and ``cv2.remap``); no torch. Errors are ``ValueError`` with a message.

Pixel coordinates everywhere: x to the right, y DOWN, the centre of pixel (column i, row j) at (i, j); the image
covers [-0.5, W-0.5] x [-0.5, H-0.5]. Images are HxWxC (or HxW) arrays, shape ``(height, width[, channels])``.

Motion dicts (one frame's step, Deforum's names and units; missing keys take the defaults in ``MOTION_DEFAULTS``,
other keys are ignored):

* ``zoom``: scale per frame, 1 = still, > 1 moves in (content grows).
* ``angle``: degrees per frame, positive = counter-clockwise on screen.
* ``translation_x`` / ``translation_y``: 2D: pixels per frame; positive x moves content RIGHT, positive y moves
  content DOWN (Deforum's sign). 3D: Deforum units, see :func:`deforum_camera_delta`.
* ``transform_center_x`` / ``transform_center_y``: centre of the 2D rotation and zoom, 0-1 of width / height.
* ``translation_z``, ``rotation_3d_x`` / ``_y`` / ``_z`` (degrees), ``fov`` (degrees): 3D only.

Cameras follow Blender: a camera looks down its local -Z with +Y up and +X right; ``matrix_world`` is its
camera-to-world transform (any object scale on it is removed, as Blender does for rendering). Internally rays use
the OpenCV camera frame (x right, y down, z forward), which is Blender's camera frame turned 180 degrees about X.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from . import vocabulary as vocab

BORDERS = vocab.names(vocab.BORDERS)
"""Border modes for pixels that come from outside the source image:

* ``REPLICATE`` -> ``cv2.BORDER_REPLICATE``: the edge pixel repeats (``aaa|abcd``).
* ``WRAP`` -> ``cv2.BORDER_WRAP``: the opposite edge comes in (``bcd|abcd``), a tiling.
* ``REFLECT`` -> ``cv2.BORDER_REFLECT``: mirror about the image EDGE, the edge pixel repeated once (``cba|abcd``).
  That is what torch's ``grid_sample(padding_mode="reflection", align_corners=False)`` does, which Deforum's 3D mode
  uses; OpenCV's REFLECT_101 (``dcb|abcd``, mirror about the edge pixel's centre) is not used.
"""

_CV2_BORDERS = {"REPLICATE": cv2.BORDER_REPLICATE, "WRAP": cv2.BORDER_WRAP, "REFLECT": cv2.BORDER_REFLECT}

MOTION_DEFAULTS: dict[str, float] = {
    "zoom": 1.0, "angle": 0.0, "translation_x": 0.0, "translation_y": 0.0, "translation_z": 0.0,
    "transform_center_x": 0.5, "transform_center_y": 0.5,
    "rotation_3d_x": 0.0, "rotation_3d_y": 0.0, "rotation_3d_z": 0.0, "fov": 40.0,
}

TRANSLATION_SCALE = 1.0 / 200.0
"""Deforum's 3D translation unit in scene units (Deforum's ``TRANSLATION_SCALE``, inherited from Disco Diffusion)."""

FAR_DEPTH = 1e9
"""Depth values at or beyond this (and <= 0, nan, inf) mean "infinitely far": only the camera rotation moves them."""

# Blender camera frame <-> OpenCV camera frame (x right, y down, z forward). Its own inverse.
_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])

_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


# ----------------------------------------------------------------------------------------------------- helpers

def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _motion(motion: Mapping[str, Any] | None) -> dict[str, float]:
    if motion is None:
        motion = {}
    if not isinstance(motion, Mapping):
        raise ValueError(f"motion must be a dict, got {type(motion).__name__}")
    out = dict(MOTION_DEFAULTS)
    for key in MOTION_DEFAULTS:
        if key in motion and motion[key] is not None:
            out[key] = _number(motion[key], f"motion[{key!r}]")
    if out["zoom"] <= 0:
        raise ValueError(f"motion['zoom'] must be > 0, got {out['zoom']}")
    return out


def _size(width: Any, height: Any) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(width), int(height)


def border_mode(border: str) -> int:
    """The OpenCV ``borderMode`` constant for one of ``BORDERS`` (case-insensitive); ValueError otherwise."""
    key = border.upper() if isinstance(border, str) else border
    if key not in _CV2_BORDERS:
        raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
    return _CV2_BORDERS[key]


_border = border_mode


def _image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0 or (image.ndim == 3
                                                                                 and image.shape[2] == 0):
        raise ValueError(f"image must be HxW or HxWxC with non-zero sizes, got shape {image.shape}")
    if image.dtype.type not in _DTYPES:
        raise ValueError(f"image dtype must be uint8 or float32 (or uint16, int16, float64), got {image.dtype}")
    return image


def _per_channels(image: np.ndarray, fn) -> np.ndarray:
    """Apply an OpenCV warp channel-group-wise (OpenCV takes at most 4 channels) and keep the input's shape."""
    if image.ndim == 2:
        return fn(image).reshape(image.shape)
    channels = image.shape[2]
    parts = [fn(np.ascontiguousarray(image[:, :, i:i + 4])).reshape(image.shape[:2] + (min(4, channels - i),))
             for i in range(0, channels, 4)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def _matrix3(value: Any, name: str) -> np.ndarray:
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 3x3 matrix of numbers") from None
    if out.shape != (3, 3) or not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be a finite 3x3 matrix, got shape {out.shape}")
    if abs(np.linalg.det(out)) < 1e-12:
        raise ValueError(f"{name} is singular")
    return out


def _pose(value: Any, name: str) -> np.ndarray:
    """A 4x4 camera-to-world matrix with any scale removed from its axes (Blender normalises it the same way)."""
    try:
        out = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 4x4 matrix of numbers") from None
    if out.shape != (4, 4) or not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be a finite 4x4 matrix, got shape {out.shape}")
    if not np.allclose(out[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"{name} must be affine (last row 0 0 0 1), got {out[3].tolist()}")
    lengths = np.linalg.norm(out[:3, :3], axis=0)
    if np.any(lengths < 1e-12):
        raise ValueError(f"{name} has a zero-length axis")
    out[:3, :3] /= lengths
    if abs(np.linalg.det(out[:3, :3])) < 1e-9:
        raise ValueError(f"{name} is singular")
    return out


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------------------------------- 2D

def matrix_2d(width: int, height: int, motion: Mapping[str, Any] | None) -> np.ndarray:
    """3x3 float64 matrix M mapping a SOURCE pixel (x, y, 1) to its DESTINATION in the warped frame.

    With c = (transform_center_x * width, transform_center_y * height), s = zoom, a = radians(angle) and
    t = (translation_x, translation_y), in this order:

    1. rotate by ``angle`` counter-clockwise ON SCREEN and scale by ``zoom``, both about c:
       ``q = c + s * [[cos a, sin a], [-sin a, cos a]] @ (p - c)``  (y points down, so this is counter-clockwise
       as seen; a point right of c moves up for a small positive angle);
    2. translate: ``dest = q + t`` (positive translation_y moves content down).

    So ``M = T(t) @ T(c) @ S(s) @ R(a) @ T(-c)``. Zero motion gives exactly the identity. Note c is
    ``cx * width``, Deforum's choice, not the exact pixel-centre middle ``(width - 1) / 2``.

    Relation to Deforum 2D (``anim_frame_warp_2d``): Deforum builds ``rot = cv2.getRotationMatrix2D(c, angle,
    zoom)`` (the same step 1, same angle sign) and a separate translation matrix ``trans``, and warps with
    ``rot @ trans`` (``cv2.warpPerspective``, source -> destination): it translates FIRST and then rotates/zooms, so
    its translation is itself rotated and scaled, ``dest = c + s R (p + t - c)``. Here translation comes last, so it
    is a plain on-screen shift; the two agree when angle = 0 and zoom = 1, and Deforum's matrix equals this one with
    t replaced by ``s * R(a) @ t``. Deforum samples with Lanczos; this uses bilinear.

    Relation to Giffusion (``apply_transformation2D``, kornia ``get_affine_matrix2d`` + ``warp_affine``): the same
    order as here (rotate/scale about the centre, then add the translation in pixels, positive y moving content
    down), but kornia's matrix is built with ``-angle``, so a positive Giffusion angle turns CLOCKWISE on screen;
    its centre is passed as ``(h / 2, w / 2)`` where kornia reads (x, y), i.e. swapped for non-square images.
    (Checked against DN6/giffusion ``utils.py`` and kornia's source.)
    """
    width, height = _size(width, height)
    m = _motion(motion)
    cx, cy = m["transform_center_x"] * width, m["transform_center_y"] * height
    a = math.radians(m["angle"])
    s = m["zoom"]
    lin = s * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    centre = np.array([cx, cy])
    out = np.eye(3)
    out[:2, :2] = lin
    out[:2, 2] = centre - lin @ centre + np.array([m["translation_x"], m["translation_y"]])
    return out


def warp_2d(image: np.ndarray, motion: Mapping[str, Any] | None, border: str = "REPLICATE") -> np.ndarray:
    """Warp ``image`` (HxWxC or HxW, uint8 or float32) by :func:`matrix_2d`; same shape and dtype back.

    Bilinear (``cv2.INTER_LINEAR``); pixels from outside the source are filled by ``border`` (see ``BORDERS``).
    The identity motion returns a copy of the input.
    """
    image = _image(image)
    mode = _border(border)
    height, width = image.shape[:2]
    m = matrix_2d(width, height, motion)
    if np.array_equal(m, np.eye(3)):
        return image.copy()
    affine = m[:2]
    return _per_channels(image, lambda part: cv2.warpAffine(part, affine, (width, height), flags=cv2.INTER_LINEAR,
                                                            borderMode=mode))


# ---------------------------------------------------------------------------------------------------- cameras

def intrinsics(camera: Mapping[str, Any] | None, width: int, height: int, fov: float = 40.0) -> np.ndarray:
    """3x3 pinhole matrix K in pixels (x right, y down, pixel centres at integers) for an image ``width x height``.

    ``camera`` is a baked Blender camera record (``type``, ``lens`` mm, ``sensor_width`` / ``sensor_height`` mm,
    ``sensor_fit``, ``shift_x`` / ``shift_y``; missing ones take Blender's defaults 50 / 36 / 24 / AUTO / 0). Blender's
    rules (``BKE_camera_params_compute_viewplane``), square pixels assumed:

    * the sensor size spans one image dimension: AUTO -> ``sensor_width`` across the LARGER dimension (width when
      width >= height); HORIZONTAL -> ``sensor_width`` across the width; VERTICAL -> ``sensor_height`` across the
      height. Focal length in pixels ``f = lens / sensor * that dimension``, for both axes.
    * shift is in units of that same dimension (for AUTO the larger one): positive ``shift_x`` shows more to the
      right, so the principal point moves LEFT; positive ``shift_y`` shows more above, so it moves DOWN:
      ``cx = width / 2 - 0.5 - shift_x * dim``, ``cy = height / 2 - 0.5 + shift_y * dim``.

    ``camera`` None: a symmetric camera with a HORIZONTAL field of view of ``fov`` degrees,
    ``f = (width / 2) / tan(fov / 2)``. Non-perspective cameras raise ValueError.
    """
    width, height = _size(width, height)
    if camera is None:
        fov = _number(fov, "fov")
        if not 0.0 < fov < 180.0:
            raise ValueError(f"fov must be between 0 and 180 degrees, got {fov}")
        f = (width / 2.0) / math.tan(math.radians(fov) / 2.0)
        return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
    if not isinstance(camera, Mapping):
        raise ValueError(f"camera must be a dict (a baked camera record) or None, got {type(camera).__name__}")
    kind = camera.get("type", "PERSP")
    if kind != "PERSP":
        raise ValueError(f"only perspective cameras (type 'PERSP') can be used for reprojection, got {kind!r}")
    lens = _number(camera.get("lens", 50.0), "camera['lens']")
    sensor_width = _number(camera.get("sensor_width", 36.0), "camera['sensor_width']")
    sensor_height = _number(camera.get("sensor_height", 24.0), "camera['sensor_height']")
    shift_x = _number(camera.get("shift_x", 0.0) or 0.0, "camera['shift_x']")
    shift_y = _number(camera.get("shift_y", 0.0) or 0.0, "camera['shift_y']")
    if lens <= 0 or sensor_width <= 0 or sensor_height <= 0:
        raise ValueError(f"camera lens and sensor sizes must be > 0, got lens {lens}, sensor {sensor_width} x "
                         f"{sensor_height}")
    fit = str(camera.get("sensor_fit", "AUTO") or "AUTO").upper()
    if fit == "AUTO":
        sensor, dim = sensor_width, (width if width >= height else height)
    elif fit == "HORIZONTAL":
        sensor, dim = sensor_width, width
    elif fit == "VERTICAL":
        sensor, dim = sensor_height, height
    else:
        raise ValueError(f"camera sensor_fit must be AUTO, HORIZONTAL or VERTICAL, got {camera.get('sensor_fit')!r}")
    f = lens / sensor * dim
    cx = width / 2.0 - 0.5 - shift_x * dim
    cy = height / 2.0 - 0.5 + shift_y * dim
    return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])


def deforum_camera_delta(motion: Mapping[str, Any] | None) -> np.ndarray:
    """4x4 T with ``cur_cam_to_world = prev_cam_to_world @ T`` for one frame of Deforum 3D motion (Blender frames).

    Deforum (``anim_frame_warp_3d`` / ``transform_image_3d``) works in a frame with x right, y DOWN, z forward
    (its sampling grid's axes, depth positive ahead) and builds the new pytorch3d camera with
    ``R = euler_angles_to_matrix(radians(rotation_3d_x, _y, _z), "XYZ") = Rx @ Ry @ Rz`` and
    ``T = (-translation_x, translation_y, -translation_z) * TRANSLATION_SCALE`` (1/200), mapping a point as
    ``X_new = X_old @ R + T`` (row vectors). Inverting that gives the new camera's pose in the old camera's frame,
    which is turned into Blender's camera frame (x right, y up, looking down -Z). In Blender terms, per frame:

    * translation_x > 0: the camera moves right (+X local) by tx / 200, so content moves LEFT;
    * translation_y > 0: the camera moves up (+Y local), content moves DOWN;
    * translation_z > 0: the camera moves forward (-Z local, into the scene), content grows (zoom in);
    * rotation_3d_x > 0: the camera tilts up, content moves down;
    * rotation_3d_y > 0: the camera pans right, content moves left;
    * rotation_3d_z > 0: the camera rolls clockwise, content turns counter-clockwise on screen (like 2D ``angle``).

    Rotations are applied in Deforum's order: ``Rx @ Ry @ Rz`` in the y-down frame. Zero motion gives the identity.
    """
    m = _motion(motion)
    rot = (_rot_x(math.radians(m["rotation_3d_x"])) @ _rot_y(math.radians(m["rotation_3d_y"]))
           @ _rot_z(math.radians(m["rotation_3d_z"])))
    t = np.array([-m["translation_x"], m["translation_y"], -m["translation_z"]]) * TRANSLATION_SCALE
    # X_new = rot.T @ X_old + t  =>  X_old = rot @ X_new - rot @ t: the new camera's pose in the old camera's frame.
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = -(rot @ t)
    out = _FLIP @ pose @ _FLIP
    out[np.abs(out) < 1e-300] = 0.0  # no negative zeros from the flips
    return out


# ---------------------------------------------------------------------------------------------------------- 3D

def reproject(image: np.ndarray, prev_cam_to_world: np.ndarray, cur_cam_to_world: np.ndarray, K_prev: np.ndarray,
              K_cur: np.ndarray, depth: np.ndarray | None = None, depth_kind: str = "planar",
              plane_distance: float = 10.0, border: str = "REPLICATE") -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp ``image`` (seen by the previous camera) into the current camera.

    Camera matrices are Blender camera-to-world 4x4s (camera looks down -Z, +Y up); K are :func:`intrinsics`
    matrices for the image's size. For every current pixel: its ray through ``K_cur`` is scaled by ``depth``, taken
    to the world by ``cur_cam_to_world``, to the previous camera by the inverse of ``prev_cam_to_world``, projected
    through ``K_prev``, and ``image`` is sampled there (``cv2.remap``, bilinear, ``border`` outside the frame).

    ``depth``: HxW of the CURRENT frame's scene in scene units (Blender's Z pass from the current camera).
    ``depth_kind`` "planar" = distance along the camera's view axis (Blender's Z pass), "radial" = along each
    pixel's ray. Values <= 0, nan, inf or >= ``FAR_DEPTH`` are infinitely far: only the rotation moves them.
    ``depth`` None: the scene is a plane perpendicular to the PREVIOUS camera's view axis, ``plane_distance`` in
    front of it (Deforum's flat 3D warp); a ray that misses it or meets it behind the current camera is infinitely
    far.

    Returns ``(warped, valid)``: the warped image (same shape and dtype) and an HxW bool mask, True where the source
    point is in front of the previous camera and inside the previous frame ([-0.5, W-0.5] x [-0.5, H-0.5]). Pixels
    whose source is behind the previous camera keep their own pixel of ``image`` (the mask says False there).
    """
    image = _image(image)
    mode = _border(border)
    height, width = image.shape[:2]
    if depth_kind not in ("planar", "radial"):
        raise ValueError(f"depth_kind must be 'planar' or 'radial', got {depth_kind!r}")
    rot, trans = _relative_pose(prev_cam_to_world, cur_cam_to_world)
    K_prev = _matrix3(K_prev, "K_prev")
    K_cur = _matrix3(K_cur, "K_cur")
    pix, rays = _pixel_rays(K_cur, width, height)
    dirs = rot @ rays  # ray directions in the previous camera's frame
    if depth is not None:
        scale, finite = _depth_scale(depth, rays, depth_kind, (height, width))
    else:
        scale, finite = _plane_scale(dirs, trans, plane_distance)
    # Finite points: the camera's offset plus the scaled ray; infinitely far ones: the direction alone.
    points = np.where(finite, dirs * scale + trans[:, None], dirs)
    map_x, map_y, valid = _source_maps(points, K_prev, pix, width, height)
    warped = _per_channels(image, lambda part: cv2.remap(part, map_x, map_y, cv2.INTER_LINEAR, borderMode=mode))
    return warped, valid


def _relative_pose(prev_cam_to_world: Any, cur_cam_to_world: Any) -> tuple[np.ndarray, np.ndarray]:
    """(rotation, translation) from the current camera's OpenCV frame to the previous camera's."""
    prev_pose = _pose(prev_cam_to_world, "prev_cam_to_world") @ _FLIP  # OpenCV-frame camera -> world
    cur_pose = _pose(cur_cam_to_world, "cur_cam_to_world") @ _FLIP
    rel = np.linalg.inv(prev_pose) @ cur_pose  # current camera frame -> previous camera frame
    return rel[:3, :3], rel[:3, 3]


def _pixel_rays(K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, rays): every pixel as a homogeneous column (x, y, 1), row by row, and its ray through ``K``, z = 1."""
    us, vs = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)])
    rays = np.linalg.inv(K) @ pix
    with np.errstate(divide="ignore", invalid="ignore"):
        rays = rays / rays[2]  # z = 1: a planar depth scales it directly
    return pix, rays


def _depth_scale(depth: Any, rays: np.ndarray, depth_kind: str,
                 shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(scale, finite) per ray from a depth map: how far along its (z = 1) ray each pixel's point lies."""
    d = np.asarray(depth, dtype=np.float64)
    if d.shape != shape:
        raise ValueError(f"depth must be HxW = {shape} like the image, got shape {d.shape}")
    d = d.ravel()
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(d) & (d > 0) & (d < FAR_DEPTH)
    scale = np.where(finite, d, 0.0)
    if depth_kind == "radial":
        scale = scale / np.linalg.norm(rays, axis=0)
    return scale, finite


def _plane_scale(dirs: np.ndarray, trans: np.ndarray, plane_distance: Any) -> tuple[np.ndarray, np.ndarray]:
    """(scale, finite) per ray where it meets the plane ``plane_distance`` in front of the previous camera."""
    dist = _number(plane_distance, "plane_distance")
    if dist <= 0:
        raise ValueError(f"plane_distance must be > 0, got {dist}")
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (dist - trans[2]) / dirs[2]  # ray parameter where it meets z = dist (prev frame)
    finite = np.isfinite(scale) & (scale > 0) & (np.abs(dirs[2]) > 1e-12)
    return np.where(finite, scale, 0.0), finite


def _source_maps(points: np.ndarray, K_prev: np.ndarray, pix: np.ndarray, width: int,
                 height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map_x, map_y, valid): where each current pixel's point lands in the previous image (``cv2.remap`` maps) and
    whether it lands in front of the previous camera and inside its frame."""
    front = points[2] > 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        proj = K_prev @ points
        src_x = proj[0] / proj[2]
        src_y = proj[1] / proj[2]
    good = front & np.isfinite(src_x) & np.isfinite(src_y)
    src_x = np.where(good, src_x, pix[0])
    src_y = np.where(good, src_y, pix[1])
    valid = good & (src_x >= -0.5) & (src_x <= width - 0.5) & (src_y >= -0.5) & (src_y <= height - 0.5)
    # Far outside only border filling happens; clamping keeps OpenCV's fixed-point maps in range.
    map_x = np.clip(src_x, -2.0 * width, 3.0 * width).reshape(height, width).astype(np.float32)
    map_y = np.clip(src_y, -2.0 * height, 3.0 * height).reshape(height, width).astype(np.float32)
    return map_x, map_y, valid.reshape(height, width)


class CameraPath:
    """The camera of every frame of a 3D feedback chain, and the reprojection of a frame's image into any other
    frame's camera: the one pose path the feedback mode renders with and :func:`warp_3d` is.

    ``poses``: Blender camera-to-world 4x4 per frame (object scale still on them: :func:`reproject` removes it);
    ``intrinsics``: :func:`intrinsics` K per frame. Build one with :meth:`scene` or :meth:`deforum`.
    """

    def __init__(self, poses: list[np.ndarray], intrinsics: list[np.ndarray]):
        if len(poses) != len(intrinsics):
            raise ValueError(f"a camera path needs one K per pose, got {len(poses)} poses and {len(intrinsics)} K")
        self.poses = poses
        self.intrinsics = intrinsics

    @classmethod
    def scene(cls, cameras: list[Mapping[str, Any]], width: int, height: int) -> CameraPath:
        """Baked scene camera records (each with ``matrix_world``), one per frame."""
        for i, cam in enumerate(cameras):
            if not isinstance(cam, Mapping) or "matrix_world" not in cam:
                raise ValueError(f"camera {i} must be a camera record with 'matrix_world'")
        return cls([np.array(cam["matrix_world"], dtype=np.float64) for cam in cameras],
                   [intrinsics(cam, width, height) for cam in cameras])

    @classmethod
    def deforum(cls, motions: list[Mapping[str, Any] | None], width: int, height: int) -> CameraPath:
        """Deforum's 3D motion, one dict per frame: the first frame's camera at the identity, each later one at
        ``previous @ deforum_camera_delta(its motion)`` (the first frame's motion moves nothing), K from each frame's
        own ``fov`` (horizontal). Scene units are Deforum's translation units / 200."""
        poses, ks = [], []
        pose = np.eye(4)
        for i, motion in enumerate(motions):
            if i:
                pose = pose @ deforum_camera_delta(motion)
            poses.append(pose)
            ks.append(intrinsics(None, width, height, _motion(motion)["fov"]))
        return cls(poses, ks)

    def __len__(self) -> int:
        return len(self.poses)

    def reproject(self, image: np.ndarray, source: int, target: int, depth: np.ndarray | None = None,
                  depth_kind: str = "planar", plane_distance: float = 10.0,
                  border: str = "REPLICATE") -> tuple[np.ndarray, np.ndarray]:
        """``image``, seen from frame ``source``'s camera, warped into frame ``target``'s in one step (either
        direction; ``depth`` is the target frame's). Returns ``(warped, valid)`` as :func:`reproject`."""
        return reproject(image, self.poses[source], self.poses[target], self.intrinsics[source],
                         self.intrinsics[target], depth=depth, depth_kind=depth_kind, plane_distance=plane_distance,
                         border=border)


def warp_3d(image: np.ndarray, prev_camera: Mapping[str, Any] | None, cur_camera: Mapping[str, Any] | None,
            motion: Mapping[str, Any] | None, width: int, height: int, depth: np.ndarray | None = None,
            depth_kind: str = "planar", plane_distance: float = 10.0,
            border: str = "REPLICATE") -> tuple[np.ndarray, np.ndarray]:
    """3D feedback warp of the previous frame to the current one: a two-frame :class:`CameraPath`, reprojected.

    Both camera records given (each with ``matrix_world``): the scene camera path, their poses and
    :func:`intrinsics` (``motion`` is not used). Both None: Deforum's 3D motion, the previous camera at the identity
    and the current one at :func:`deforum_camera_delta` (``motion``), K from ``motion['fov']`` (horizontal) for both.
    Scene units are then Deforum's translation units / 200; see ``plane_distance`` in :func:`reproject`.
    ``image`` must be ``height x width``. Returns ``(warped, valid)`` as :func:`reproject`.
    """
    image = _image(image)
    width, height = _size(width, height)
    if image.shape[:2] != (height, width):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but width x height is {width}x{height}")
    if prev_camera is not None and cur_camera is not None:
        for name, cam in (("prev_camera", prev_camera), ("cur_camera", cur_camera)):
            if not isinstance(cam, Mapping) or "matrix_world" not in cam:
                raise ValueError(f"{name} must be a camera record with 'matrix_world'")
        path = CameraPath.scene([prev_camera, cur_camera], width, height)
    elif prev_camera is None and cur_camera is None:
        path = CameraPath.deforum([motion, motion], width, height)  # the frame's fov for both cameras
    else:
        raise ValueError("give both prev_camera and cur_camera (scene camera) or neither (Deforum motion)")
    return path.reproject(image, 0, 1, depth=depth, depth_kind=depth_kind, plane_distance=plane_distance,
                          border=border)

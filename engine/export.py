"""Frames to a GIF (Pillow) or an MP4 (imageio's FFmpeg). Sound comes from Blender's own export, not from here."""

from __future__ import annotations

import os
from typing import Sequence


def write_gif(paths: Sequence[str], out: str, fps: float) -> str:
    from PIL import Image

    if not paths:
        raise ValueError("no frames to export")
    images = [Image.open(p).convert("RGB") for p in paths]
    tmp = f"{out}.tmp.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0)
    os.replace(tmp, out)
    return out


def write_mp4(paths: Sequence[str], out: str, fps: float) -> str:
    import imageio.v2 as imageio
    import numpy as np
    from PIL import Image

    if not paths:
        raise ValueError("no frames to export")
    tmp = f"{out}.tmp.mp4"
    # H.264 wants even sizes; macro_block_size=2 pads only as far as that needs.
    with imageio.get_writer(tmp, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2) as writer:
        for p in paths:
            writer.append_data(np.asarray(Image.open(p).convert("RGB")))
    os.replace(tmp, out)
    return out


def export(paths: Sequence[str], out: str, fps: float) -> str:
    ext = os.path.splitext(out)[1].lower()
    if ext == ".gif":
        return write_gif(paths, out, fps)
    if ext in (".mp4", ".mov", ".mkv"):
        return write_mp4(paths, out, fps)
    raise ValueError(f"can't export to '{out}': use a .gif or .mp4 file name")

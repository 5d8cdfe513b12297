#!/usr/bin/env bash
# docs/shot_pins.png from a real Blender (Debian's Blender 4.3 via ../shared/tools/real-blender): a scene in Shot mode
# with two pinned pictures, the Shot panel in the Sequencer's sidebar with the pins list, and the pins' markers in the
# timeline below.
#   scripts/shot_pins_screenshot.sh [OUT_DIR]      (writes docs/shot_pins.png)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RB="${REAL_BLENDER:-$ROOT/../shared/tools/real-blender}"
OUT="$(mkdir -p "${1:-/tmp/kd-shot-pins}" && cd "${1:-/tmp/kd-shot-pins}" && pwd)"
BASE="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
rm -rf "${OUT:?}"/*
"$RB" setup >/dev/null
"$RB" sh -- "python3 -c 'import numpy' 2>/dev/null || apt-get install -y -q python3-numpy >/dev/null"
ZIP="$("$ROOT/.venv/bin/python" "$ROOT/scripts/build_extension.py" --output-dir "$OUT/build" | tail -n 1)"
run() { "$RB" run --bind "$BASE" --bind "$OUT" -- "$@"; }
run -b -c extension install-file -r user_default -e "$ZIP"

# A picture to pin from a file: a warm sky over a dark sea.
"$ROOT/.venv/bin/python" - "$OUT/hero_pose.png" <<'PY'
import sys
import numpy as np
from PIL import Image
y = np.linspace(0, 1, 480)[:, None, None]
sky = np.array([250, 170, 90]) * (1 - y) + np.array([40, 60, 110]) * y
Image.fromarray(np.broadcast_to(sky, (480, 832, 3)).astype(np.uint8)).save(sys.argv[1])
PY

cat > "$OUT/make_scene.py" <<PY
import bpy
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 48
settings = scene.keyframe_diffusion
settings.mode = "SHOT"
settings.model = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
settings.width, settings.height = 832, 480
settings.frame_range = "SCENE"
settings.video_control = "DEPTH"
settings.output_dir = "//frames_shot/"
bpy.ops.keyframe_diffusion.prompt_add(text="a lighthouse on a cliff at sunset, cinematic", frame=1)
camera = scene.camera
for frame, x in ((1, 7.4), (48, 3.0)):
    camera.location.x = x
    camera.keyframe_insert("location", index=0, frame=frame)
bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=1)
bpy.ops.keyframe_diffusion.pin_add(source="FILE", frame=48, filepath="$OUT/hero_pose.png", label="Hero Pose")
settings.pins[1].strength = 0.8
scene.frame_set(24)
bpy.ops.wm.save_as_mainfile(filepath="$OUT/shot.blend")
PY
run -b --python "$OUT/make_scene.py"

cat > "$OUT/gui.py" <<'PY'
import bpy
# The big 3D viewport becomes the camera view over a timeline with the pins' markers (left) and the Sequencer with its
# sidebar on the Diffusion tab (right). One step a timer tick: a split area has its new size only after a redraw.
state = {}
def areas(kind):
    return [a for a in state["win"].screen.areas if a.type == kind]
def split_vertically():
    state["win"] = win = bpy.context.window_manager.windows[0]
    big = max(win.screen.areas, key=lambda a: a.width * a.height)
    with bpy.context.temp_override(window=win, area=big):
        bpy.ops.screen.area_split(direction="VERTICAL", factor=0.56)
    bpy.app.timers.register(split_left, first_interval=0.5)
def split_left():
    left, right = sorted(areas("VIEW_3D"), key=lambda a: a.x)
    right.type = "SEQUENCE_EDITOR"
    right.spaces.active.view_type = "PREVIEW"
    right.spaces.active.show_region_ui = True
    right.spaces.active.show_region_toolbar = False
    state["seq"] = right
    with bpy.context.temp_override(window=state["win"], area=left):
        bpy.ops.screen.area_split(direction="HORIZONTAL", factor=0.4)
    bpy.app.timers.register(make_timeline, first_interval=0.5)
def make_timeline():
    bottom, top = sorted(areas("VIEW_3D"), key=lambda a: a.y)
    bottom.ui_type = "TIMELINE"
    space = bottom.spaces.active
    for name in ("show_region_channels", "show_region_ui"):
        if hasattr(space, name):
            setattr(space, name, False)
    state.update(timeline=bottom, view=top)
    bpy.app.timers.register(frame_views, first_interval=1.0)
def frame_views():
    win = state["win"]
    scene = bpy.context.scene  # frame a little past the scene range, so the last pin's marker shows its name
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, -1, 58
    for region in state["seq"].regions:
        if region.type == "UI":
            region.active_panel_category = "Diffusion"
            region.tag_redraw()
    for area, op in ((state["timeline"], bpy.ops.anim.scene_range_frame),
                     (state["view"], bpy.ops.view3d.view_center_camera)):
        region = next(r for r in area.regions if r.type == "WINDOW")
        if area.type == "VIEW_3D":
            area.spaces.active.region_3d.view_perspective = "CAMERA"
        with bpy.context.temp_override(window=win, area=area, region=region):
            op()
    scene.use_preview_range = False
bpy.app.timers.register(split_vertically, first_interval=2.0)
PY
"$RB" shot "$OUT/shot_pins.png" --wait 14 --size 1400x1100 --bind "$BASE" --bind "$OUT" -- --enable-event-simulate \
  "$OUT/shot.blend" --python "$OUT/gui.py"
cp "$OUT/shot_pins.png" "$ROOT/docs/shot_pins.png"
echo "docs/shot_pins.png"

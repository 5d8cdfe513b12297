#!/usr/bin/env bash
# End to end on a real Blender binary (Debian's Blender 4.3, Python 3.13) via ../shared/tools/real-blender:
# install the built zip with `blender -c extension install-file`, make a scene, run
# `blender scene.blend -c keyframe_diffusion generate --save` with this repo's .venv as the external engine Python,
# check the frames, then `-a` with Generate Before Render, and take a GUI screenshot mid-generation.
#   scripts/real_blender_e2e.sh [OUT_DIR]      (make e2e-real-blender)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RB="${REAL_BLENDER:-$ROOT/../shared/tools/real-blender}"
OUT="$(mkdir -p "${1:-/tmp/kd-real-blender}" && cd "${1:-/tmp/kd-real-blender}" && pwd)"
BASE="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
ENGINE_PY="$ROOT/.venv/bin/python"
rm -rf "$OUT"/*
"$RB" setup >/dev/null
ZIP="$("$ENGINE_PY" "$ROOT/scripts/build_extension.py" --output-dir "$OUT/build" | tail -n 1)"
run() { "$RB" run --bind "$BASE" --bind "$OUT" -- "$@"; }

run -b -c extension install-file -r user_default -e "$ZIP"
cat > "$OUT/make_scene.py" <<PY
import bpy
prefs = bpy.context.preferences.addons["bl_ext.user_default.keyframe_diffusion"].preferences
prefs.python_path = "$ENGINE_PY"
bpy.ops.wm.save_userpref()
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 12
bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=1)
bpy.ops.keyframe_diffusion.prompt_add(text="a blue square", frame=12)
scene.keyframe_diffusion.output_dir = "//frames/"
scene.render.resolution_x = scene.render.resolution_y = 64
scene.render.image_settings.file_format = "PNG"
scene.render.filepath = "//render/"
bpy.ops.wm.save_as_mainfile(filepath="$OUT/scene.blend")
PY
run -b --python "$OUT/make_scene.py"
run -b "$OUT/scene.blend" -c keyframe_diffusion generate --save
test "$(ls "$OUT"/frames/frame_*.png | wc -l)" -eq 12

cat > "$OUT/before_render.py" <<PY
import bpy
bpy.context.scene.keyframe_diffusion.generate_before_render = True
bpy.context.scene.keyframe_diffusion.output_dir = "//frames_render/"
bpy.ops.wm.save_mainfile()
PY
run -b "$OUT/scene.blend" --python "$OUT/before_render.py"
run -b "$OUT/scene.blend" -a
test "$(ls "$OUT"/frames_render/frame_*.png | wc -l)" -eq 12
test "$(ls "$OUT"/render/*.png | wc -l)" -eq 12

cat > "$OUT/gui.py" <<'PY'
import bpy
state = {}
def setup():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "SEQUENCE_EDITOR"
    area.spaces.active.view_type = "SEQUENCER_PREVIEW"
    area.spaces.active.show_region_ui = True
    state.update(win=win, area=area)
    bpy.app.timers.register(start, first_interval=1.0)
def start():
    for region in state["area"].regions:
        if region.type == "UI":
            region.active_panel_category = "Diffusion"
    s = bpy.context.scene.keyframe_diffusion
    s.width = s.height = 128
    s.steps = 40
    s.output_dir = "//frames_gui/"
    with bpy.context.temp_override(window=state["win"], area=state["area"]):
        bpy.ops.keyframe_diffusion.generate("INVOKE_DEFAULT")
bpy.app.timers.register(setup, first_interval=2.0)
PY
"$RB" shot "$OUT/generating.png" --wait 40 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" --python "$OUT/gui.py"

# Esc in the GUI: simulated key press once the first frame is done; the job must stop and keep that frame.
cat > "$OUT/esc.py" <<PY
import bpy, os
state = {}
LOG = "$OUT/esc.log"
def setup():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "SEQUENCE_EDITOR"
    state.update(win=win, area=area)
    s = bpy.context.scene.keyframe_diffusion
    s.steps, s.batch_size, s.output_dir = 8, 1, "//frames_esc/"
    with bpy.context.temp_override(window=win, area=area):
        bpy.ops.keyframe_diffusion.generate("INVOKE_DEFAULT")
    bpy.app.timers.register(press_esc, first_interval=1.0)
def press_esc():
    st = bpy.context.window_manager.keyframe_diffusion_status
    if "done" not in st.message or st.message.startswith("0/"):
        return 0.5
    win = state["win"]
    win.event_simulate(type="MOUSEMOVE", value="NOTHING", x=win.width // 3, y=win.height // 2)
    win.event_simulate(type="ESC", value="PRESS", x=win.width // 3, y=win.height // 2)
    bpy.app.timers.register(report, first_interval=6.0)
def report():
    st = bpy.context.window_manager.keyframe_diffusion_status
    frames = [f for f in os.listdir(bpy.path.abspath("//frames_esc/")) if f.endswith(".png")]
    open(LOG, "w").write("running=%s frames=%d message=%s\\n" % (st.running, len(frames), st.message))
bpy.app.timers.register(setup, first_interval=2.0)
PY
"$RB" shot "$OUT/cancelled.png" --wait 45 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" \
  --enable-event-simulate --python "$OUT/esc.py"
cat "$OUT/esc.log"
grep -q "running=False" "$OUT/esc.log" && grep -q "message=Cancelled" "$OUT/esc.log"
test "$(ls "$OUT"/frames_esc/frame_*.png | wc -l)" -lt 12

echo "real Blender end to end: OK (frames in $OUT/frames, screenshot $OUT/generating.png)"

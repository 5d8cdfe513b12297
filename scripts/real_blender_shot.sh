#!/usr/bin/env bash
# Shot mode on a real Blender binary (Debian's Blender 4.3, Python 3.13) via ../shared/tools/real-blender: install the
# built zip, make a scene (a camera dollying past a cube), pin Blender's render at frames 1 and 24, depth as the VACE
# control video, and `blender scene.blend -c keyframe_diffusion generate --save` with this repo's .venv as the engine
# Python and the tiny random-weight Wan VACE model; check 24 frames in the saved strip, then a GUI screenshot of the
# Sequencer with the strip and the Shot panel.
#   scripts/real_blender_shot.sh [OUT_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RB="${REAL_BLENDER:-$ROOT/../shared/tools/real-blender}"
OUT="$(mkdir -p "${1:-/tmp/kd-real-blender-shot}" && cd "${1:-/tmp/kd-real-blender-shot}" && pwd)"
BASE="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
ENGINE_PY="$ROOT/.venv/bin/python"
rm -rf "${OUT:?}"/*
"$RB" setup >/dev/null
"$RB" sh -- "python3 -c 'import numpy' 2>/dev/null || apt-get install -y -q python3-numpy >/dev/null"
ZIP="$("$ENGINE_PY" "$ROOT/scripts/build_extension.py" --output-dir "$OUT/build" | tail -n 1)"
run() { "$RB" run --bind "$BASE" --bind "$OUT" -- "$@"; }

run -b -c extension install-file -r user_default -e "$ZIP"
cat > "$OUT/make_scene.py" <<PY
import bpy
prefs = bpy.context.preferences.addons["bl_ext.user_default.keyframe_diffusion"].preferences
prefs.python_path = "$ENGINE_PY"
bpy.ops.wm.save_userpref()
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 24
camera = scene.camera
for frame, x in ((1, -2.0), (24, 2.0)):
    camera.location = (7.0 + x, -7.0, 5.0)
    camera.keyframe_insert("location", frame=frame)
scene.view_settings.view_transform = "Standard"
scene.render.engine = "CYCLES"  # EEVEE needs OpenGL, which a headless machine may not have
scene.cycles.samples = 4
scene.cycles.use_denoising = False  # Debian's Cycles has no OpenImageDenoise
s = scene.keyframe_diffusion
s.mode = "SHOT"
s.model = "embedded:tiny-wan-vace"
s.width = s.height = 32
s.steps = 2
s.video_control = "DEPTH"
s.output_dir = "//frames/"
bpy.ops.keyframe_diffusion.prompt_add(text="a lighthouse on a cliff at sunset", frame=1)
bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=1)
bpy.ops.keyframe_diffusion.pin_add(source="RENDER", frame=24)
bpy.ops.wm.save_as_mainfile(filepath="$OUT/scene.blend")
PY
run -b --python "$OUT/make_scene.py"
run -b "$OUT/scene.blend" -c keyframe_diffusion generate --save | tee "$OUT/generate.log"
test "$(ls "$OUT"/frames/frame_*.png | wc -l)" -eq 24
cat > "$OUT/check.py" <<PY
import bpy, json, os
scene = bpy.context.scene
s = scene.keyframe_diffusion
strip = next(x for x in scene.sequence_editor.sequences_all if x.name == s.strip_name)
assert (strip.frame_final_start, strip.frame_final_end, len(strip.elements)) == (1, 25, 24), strip
plan = json.load(open(os.path.join(bpy.path.abspath(s.output_dir), "plan.json")))
assert [p["frame"] for p in plan["settings"]["pins"]] == [1, 24]
assert all(os.path.isfile(r["control_frame"]["path"]) for r in plan["frames"])
print("SHOT CHECK OK", strip.name, len(strip.elements), [p["path"] for p in plan["settings"]["pins"]])
PY
run -b "$OUT/scene.blend" --python "$OUT/check.py" | grep "SHOT CHECK OK"
cat > "$OUT/gui.py" <<PY
import bpy
state = {}
def setup():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "SEQUENCE_EDITOR"
    area.spaces.active.view_type = "SEQUENCER_PREVIEW"
    area.spaces.active.show_region_ui = True
    bpy.context.scene.frame_set(12)
    state.update(area=area, win=win)
    bpy.app.timers.register(category, first_interval=3.0)
def category():
    area = state["area"]
    for region in area.regions:
        if region.type == "UI":
            region.active_panel_category = "Diffusion"
            region.tag_redraw()
        if region.type == "PREVIEW":
            with bpy.context.temp_override(window=state["win"], area=area, region=region):
                bpy.ops.sequencer.view_zoom_ratio(ratio=4.0)  # the 32x32 frame, large enough to see
bpy.app.timers.register(setup, first_interval=1.0)
PY
"$RB" shot "$OUT/shot_strip.png" --wait 14 --size 1400x1000 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" \
    --python "$OUT/gui.py"
echo "shot mode on real Blender: OK ($OUT)"

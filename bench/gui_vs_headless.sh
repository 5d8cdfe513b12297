#!/usr/bin/env bash
# The Generate GUI against headless on real Blender 4.3 (../shared/tools/real-blender): the same 8-frame plan (embedded:shapes,
# 64x64, 8 steps) rendered by `-c keyframe_diffusion generate` and by a modal Generate in the GUI under Xvfb, alternating;
# seconds per frame from the frame files' times (model loading excluded) and the GUI Blender's own CPU share.
#   bench/gui_vs_headless.sh LABEL [PAIRS]     (results in /tmp/kd-gui-vs-headless/LABEL/result.txt; see bench/RESULTS.md)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABEL=$1; PAIRS=${2:-2}
OUT=/tmp/kd-gui-vs-headless/$LABEL
RB="${REAL_BLENDER:-$ROOT/../shared/tools/real-blender}"
BASE="$($ROOT/.venv/bin/python -c 'import sys; print(sys.base_prefix)')"
ENGINE_PY="$ROOT/.venv/bin/python"
mkdir -p "$OUT"
export BLENDER_USER_RESOURCES=$OUT/res
cd $ROOT
run() { "$RB" run --bind "$BASE" --bind "$OUT" -- "$@"; }
if [ ! -d "$OUT/res" ]; then
ZIP="$($ENGINE_PY scripts/build_extension.py --output-dir "$OUT/build" | tail -n 1)"
run -b -c extension install-file -r user_default -e "$ZIP" >/dev/null
cat > "$OUT/make_scene.py" <<PY
import bpy
prefs = bpy.context.preferences.addons["bl_ext.user_default.keyframe_diffusion"].preferences
prefs.python_path = "$ENGINE_PY"
bpy.ops.wm.save_userpref()
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 8
bpy.ops.keyframe_diffusion.prompt_add(text="a red circle on a blue background", frame=1)
bpy.ops.keyframe_diffusion.prompt_add(text="a yellow square on a green background", frame=8)
s = scene.keyframe_diffusion
s.width = s.height = 64
s.steps, s.guidance, s.batch_size = 8, 6.0, 1
if hasattr(s, "frame_range"):
    s.frame_range = "SCENE"
scene.render.resolution_x = scene.render.resolution_y = 64
bpy.ops.wm.save_as_mainfile(filepath="$OUT/scene.blend")
PY
run -b --python "$OUT/make_scene.py" >/dev/null
fi
cat > "$OUT/gui.py" <<'PY'
import bpy, sys, time
state = {}
folder = sys.argv[sys.argv.index("--") + 1]
def setup():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "SEQUENCE_EDITOR"
    area.spaces.active.view_type = "SEQUENCER_PREVIEW"
    area.spaces.active.show_region_ui = True
    bpy.context.scene.keyframe_diffusion.output_dir = folder
    state.update(win=win, area=area)
    bpy.app.timers.register(start, first_interval=1.0)
def start():
    for region in state["area"].regions:
        if region.type == "UI":
            region.active_panel_category = "Diffusion"
    state.update(t0=time.perf_counter(), c0=time.process_time())
    with bpy.context.temp_override(window=state["win"], area=state["area"]):
        print("GENERATE", bpy.ops.keyframe_diffusion.generate("INVOKE_DEFAULT", confirmed=True), flush=True)
    bpy.app.timers.register(watch, first_interval=2.0)
def watch():
    if bpy.context.window_manager.keyframe_diffusion_status.running:
        return 0.5
    wall, cpu = time.perf_counter() - state["t0"], time.process_time() - state["c0"]
    open(folder.rstrip("/") + ".cpu", "w").write(f"Blender GUI: {cpu:.1f} s CPU in {wall:.1f} s ({cpu / wall:.0%} of a core)\n")
    bpy.ops.wm.quit_blender()
bpy.app.timers.register(setup, first_interval=2.0)
PY
spf() { "$ENGINE_PY" - "$1" <<'PY'
import glob, os, sys
t = sorted(os.path.getmtime(p) for p in glob.glob(os.path.join(sys.argv[1], "frame_*.png")))
print(f"{len(t)} frames, {(t[-1] - t[0]) / (len(t) - 1):.2f} s/frame")
PY
}
for i in $(seq ${FIRST:-1} $PAIRS); do
  run -b "$OUT/scene.blend" -c keyframe_diffusion generate --output "$OUT/headless$i/" >/dev/null 2>&1
  echo "headless $i: $(spf $OUT/headless$i)" | tee -a "$OUT/result.txt"
  "$RB" shot "$OUT/gui$i.png" --wait 400 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" \
     --python "$OUT/gui.py" -- "$OUT/gui$i/" >/dev/null 2>&1 || true
  echo "gui $i: $(spf $OUT/gui$i) $(cat $OUT/gui$i.cpu 2>/dev/null)" | tee -a "$OUT/result.txt"
done

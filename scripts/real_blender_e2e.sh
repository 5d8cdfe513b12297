#!/usr/bin/env bash
# End to end on a real Blender binary (Debian's Blender 4.3, Python 3.13) via ../shared/tools/real-blender:
# install the built zip with `blender -c extension install-file`, make a scene, run
# `blender scene.blend -c keyframe_diffusion generate --save` with this repo's .venv as the external engine Python,
# check the frames and the saved strip, then `-a` with Generate Before Render; GUI screenshots of a generation, Esc,
# the timeline and audio features, 3D feedback, the compositor (-a through the node group), the preferences with
# Check Engine, and Create Engine Environment run modal in the GUI.
#   scripts/real_blender_e2e.sh [OUT_DIR]      (make e2e-real-blender)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RB="${REAL_BLENDER:-$ROOT/../shared/tools/real-blender}"
OUT="$(mkdir -p "${1:-/tmp/kd-real-blender}" && cd "${1:-/tmp/kd-real-blender}" && pwd)"
BASE="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
ENGINE_PY="$ROOT/.venv/bin/python"
rm -rf "$OUT"/*
"$RB" setup >/dev/null
# Blender's official builds bundle numpy; Debian's package leaves it to python3-numpy. The extension's Blender side
# uses numpy (schedules), as every official build allows.
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

# An artist's first hour (issue 23): the factory startup scene (1920x1080, frames 1-250) with the extension's
# defaults and its two example prompts keyed at 1 and 24. Generate in the GUI renders exactly those 24 frames and the
# Preview shows a frame filling the picture; `-a` with Generate Before Render on a scene never generated before gives
# full-frame output and a progress line per frame.
cat > "$OUT/make_first.py" <<PY
import bpy, sys
scene = bpy.context.scene
assert (scene.render.resolution_x, scene.render.resolution_y, scene.frame_start, scene.frame_end) == (1920, 1080, 1, 250)
bpy.ops.keyframe_diffusion.prompt_examples()
scene.keyframe_diffusion.output_dir = "//frames_first/"
bpy.ops.wm.save_as_mainfile(filepath="$OUT/first.blend")
scene.keyframe_diffusion.output_dir = "//frames_first_a/"
scene.keyframe_diffusion.generate_before_render = True
scene.render.image_settings.file_format = "PNG"
scene.render.filepath = "//render_first/"
bpy.ops.wm.save_as_mainfile(filepath="$OUT/first_a.blend")
PY
run -b --python "$OUT/make_first.py"
cat > "$OUT/first_gui.py" <<PY
import bpy, json, os, subprocess, time
OUT = "$OUT"
state = {"seen": False}
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
    # confirmed: the timing the headless run above recorded can make 24 frames a "long render" on this machine, and
    # then Generate asks first (tests/blender/test_frame_range.py holds that popup's rule and text).
    with bpy.context.temp_override(window=state["win"], area=state["area"]):
        bpy.ops.keyframe_diffusion.generate("INVOKE_DEFAULT", confirmed=True)
    state["started"] = time.monotonic()
    bpy.app.timers.register(watch, first_interval=0.5)
def watch():
    status = bpy.context.window_manager.keyframe_diffusion_status
    if not state["seen"] and not status.running and time.monotonic() - state["started"] < 30:
        return 0.5  # not started yet
    if status.running:
        state["seen"] = True
        if "shot" not in state and "left" in status.message:  # mid-render: progress, estimate, live preview
            subprocess.run(["import", "-window", "root", OUT + "/first_generating.png"])
            state["shot"] = True
        return 0.5
    scene = bpy.context.scene
    scene.frame_set(12)
    region = next(r for r in state["area"].regions if r.type == "PREVIEW")
    with bpy.context.temp_override(window=state["win"], area=state["area"], region=region):
        bpy.ops.sequencer.view_all_preview()
    bpy.app.timers.register(done, first_interval=2.0)
def done():
    scene = bpy.context.scene
    frames = sorted(f for f in os.listdir(bpy.path.abspath("//frames_first/")) if f.startswith("frame_"))
    status = bpy.context.window_manager.keyframe_diffusion_status
    log = dict(seen=state["seen"], frames=frames, message=status.message, error=status.error,
               seconds=round(time.monotonic() - state["started"]),
               resolution=[scene.render.resolution_x, scene.render.resolution_y])
    open(OUT + "/first_gui.json", "w").write(json.dumps(log) + "\n")
    subprocess.run(["import", "-window", "root", OUT + "/first_done.png"])
    bpy.ops.wm.quit_blender()
bpy.app.timers.register(setup, first_interval=2.0)
PY
"$RB" shot "$OUT/first_exit.png" --wait 400 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/first.blend" \
  --python "$OUT/first_gui.py"
cat "$OUT/first_gui.json"
run -b "$OUT/first_a.blend" -s 1 -e 30 -a 2>&1 | tee "$OUT/first_a.log"
"$ENGINE_PY" - "$OUT" <<'PY'
import json, os, re, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
log = json.load(open(f"{out}/first_gui.json"))
assert log["seen"] and not log["error"], log
assert log["frames"] == [f"frame_{i:06d}.png" for i in range(1, 25)], log["frames"]  # exactly the prompts' 24
# -a on a scene never generated: the generated frames first (the prompts' 1-24), then frames whose picture is the
# generated frame scaled to the whole output, not a small square in black.
assert sorted(f for f in os.listdir(f"{out}/frames_first_a") if f.startswith("frame_")) == log["frames"]
lines = [line for line in open(f"{out}/first_a.log") if line.startswith("keyframe_diffusion:")]
assert sum(bool(re.search(r"\[\d+/24\] frame \d+ .* elapsed", line)) for line in lines) == 24, lines  # one per frame
rendered = np.asarray(Image.open(f"{out}/render_first/0012.png").convert("RGB"), dtype=np.float32)
frame = Image.open(f"{out}/frames_first_a/frame_000012.png").convert("RGB")
expected = np.asarray(frame.resize((rendered.shape[1], rendered.shape[0]), Image.BILINEAR), dtype=np.float32)
difference = np.abs(rendered - expected).mean()
assert expected.mean() > 30 and difference < 12, (expected.mean(), difference, rendered.shape)  # not black either
print(f"first hour on real Blender: 24 frames, -a output {rendered.shape[1]}x{rendered.shape[0]} matches the frame "
      f"(mean difference {difference:.1f}): OK")
PY
# The saved .blend holds the strip: 12 elements at frames 1-12, pointing at those files.
cat > "$OUT/strip.py" <<'PY'
import bpy, os
editor = bpy.context.scene.sequence_editor
strip = (editor.strips if hasattr(editor, "strips") else editor.sequences)["Keyframe Diffusion"]
folder = bpy.path.abspath(strip.directory)
files = [e.filename for e in strip.elements]
ok = all(os.path.isfile(os.path.join(folder, f)) for f in files)
print("STRIP", strip.frame_final_start, strip.frame_final_duration, len(files), files[0], files[-1], ok)
PY
run -b "$OUT/scene.blend" --python "$OUT/strip.py" | tee "$OUT/strip.log"
grep -q "STRIP 1 12 12 frame_000001.png frame_000012.png True" "$OUT/strip.log"

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
    # The embedded model's own settings (engine/shapes: 64x64, 30 steps, guidance 6), so the picture shows shapes.
    s.width = s.height = 64
    s.steps, s.guidance = 30, 6.0
    s.output_dir = "//frames_gui/"
    with bpy.context.temp_override(window=state["win"], area=state["area"]):
        bpy.ops.keyframe_diffusion.generate("INVOKE_DEFAULT", confirmed=True)  # (no "long render?" popup)
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
        bpy.ops.keyframe_diffusion.generate("INVOKE_DEFAULT", confirmed=True)  # (no "long render?" popup)
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

# The timeline as schedule: a Deforum settings file imported headless (its expression is evaluated by the engine's
# Python, since Blender's own has no numexpr), the baked zoom checked against `python -m engine schedule`.
cat > "$OUT/deforum.txt" <<'JSON'
{"max_frames": 12, "W": 64, "H": 64, "fps": 12, "seed": 7, "seed_behavior": "iter", "animation_mode": "2D",
 "zoom": "0:(1.0), 4:(1.0+0.05*sin(3.14*t/8))", "angle": "0:(0), 11:(10)", "cfg_scale_schedule": "0:(5), 11:(9)",
 "prompts": {"0": "a red circle --neg blurry", "6": "a blue square"}}
JSON
run -b "$OUT/scene.blend" -c keyframe_diffusion import-deforum "$OUT/deforum.txt" --save
run -b "$OUT/scene.blend" -c keyframe_diffusion bake --output "$OUT/frames_timeline"
"$ENGINE_PY" - "$OUT" <<'PY'
import json, subprocess, sys
out = sys.argv[1]
plan = json.load(open(f"{out}/frames_timeline/plan.json"))
expected = json.loads(subprocess.run([sys.executable, "-m", "engine", "schedule", "0:(1.0), 4:(1.0+0.05*sin(3.14*t/8))",
                                      "--frames", "12"], capture_output=True, text=True, check=True).stdout)["values"]
zoom = [r["motion"]["zoom"] for r in plan["frames"]]
assert all(abs(a - b) < 1e-5 for a, b in zip(zoom, expected)) and len(zoom) == 12, (zoom, expected)
assert [r["seed"] for r in plan["frames"]] == list(range(7, 19))
assert plan["frames"][6]["prompts"] == [{"text": "a blue square", "negative": "", "weight": 1.0, "seed": 1}]
print("timeline bake on real Blender: OK")
PY

# The sidebar next to the Graph Editor showing the imported curves.
cat > "$OUT/timeline_gui.py" <<'PY'
import bpy
state = {}
def setup():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "GRAPH_EDITOR"
    area.spaces.active.use_normalization = True
    area.spaces.active.show_region_ui = False
    with bpy.context.temp_override(window=win, area=area):
        bpy.ops.screen.area_split(direction="VERTICAL", factor=0.5)
    seq = max((a for a in win.screen.areas if a.type == "GRAPH_EDITOR"), key=lambda a: a.x)
    seq.type = "SEQUENCE_EDITOR"
    seq.spaces.active.view_type = "SEQUENCER_PREVIEW"
    seq.spaces.active.show_region_ui = True
    bpy.context.scene.frame_set(5)
    state.update(win=win, seq=seq)
    bpy.app.timers.register(later, first_interval=1.5)
def later():
    win = state["win"]
    for region in state["seq"].regions:
        if region.type == "UI":
            region.active_panel_category = "Diffusion"
            region.tag_redraw()  # else the sidebar keeps showing its old tab until something redraws it
    for area in win.screen.areas:
        if area.type == "GRAPH_EDITOR":
            region = next(r for r in area.regions if r.type == "WINDOW")
            with bpy.context.temp_override(window=win, area=area, region=region):
                bpy.ops.graph.view_all()
bpy.app.timers.register(setup, first_interval=2.0)
PY
"$RB" shot "$OUT/timeline.png" --wait 15 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" \
  --python "$OUT/timeline_gui.py"

# Audio: a click track on a sound strip drives the zoom and becomes markers (analysis in the engine's Python).
"$ENGINE_PY" - "$OUT/clicks.wav" <<'PY'
import sys
import numpy as np
import soundfile
sr, fps = 22050, 12
y = np.zeros(sr * 2, dtype=np.float32)
for frame in (2, 7, 13, 19):  # mid-frame clicks at 12 fps
    start = int((frame + 0.5) / fps * sr)
    y[start:start + 90] = 0.9 * np.exp(-np.linspace(0, 6, 90)) * np.random.default_rng(frame).normal(size=90)
soundfile.write(sys.argv[1], y, sr)
PY
cat > "$OUT/audio.py" <<PY
import bpy
scene = bpy.context.scene
editor = scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strips.new_sound("clicks", "$OUT/clicks.wav", 5, 3)
bpy.ops.keyframe_diffusion.audio_link_add(strip="clicks", data_path="keyframe_diffusion.zoom", low=1.0, high=1.2)
bpy.ops.keyframe_diffusion.audio_markers(strip="clicks", events="onsets", part="full")
bpy.ops.wm.save_mainfile()
print("markers", sorted(m.frame for m in scene.timeline_markers if m.name == "onset"))
PY
run -b "$OUT/scene.blend" --python "$OUT/audio.py" | tee "$OUT/audio.log"
grep -q "markers \[5, 10\]" "$OUT/audio.log"  # strip at frame 3 + audio frames 2, 7 (13, 19 lie past frame 12)
run -b "$OUT/scene.blend" -c keyframe_diffusion bake --output "$OUT/frames_audio"
"$ENGINE_PY" - "$OUT" <<'PY'
import json, subprocess, sys
out = sys.argv[1]
plan = json.load(open(f"{out}/frames_audio/plan.json"))
zoom = [r["motion"]["zoom"] for r in plan["frames"]]
curve = json.loads(subprocess.run([sys.executable, "-m", "engine", "audio", f"{out}/clicks.wav", "--fps", "12",
                                   "--frames", "10", "--low", "1", "--high", "1.2"], capture_output=True, text=True,
                                  check=True).stdout)["values"]
assert all(abs(a - b) < 1e-5 for a, b in zip(zoom[2:], curve)) and zoom[:2] == [1.0, 1.0], (zoom, curve)
print("audio on real Blender: OK")
PY
"$RB" shot "$OUT/audio.png" --wait 15 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" \
  --python "$OUT/timeline_gui.py"

# Feedback 3D on the real binary: the camera dollies past a cube; Blender renders its depth (Z pass, File Output
# node) at every frame and the engine reprojects each frame into the next camera with it.
cat > "$OUT/make_3d.py" <<PY
import bpy
scene = bpy.context.scene
scene.frame_start, scene.frame_end = 1, 8
s = scene.keyframe_diffusion
s.mode, s.motion_mode, s.camera_source, s.depth_source = "FEEDBACK", "3D", "SCENE", "SCENE"
s.output_dir = "//frames_3d/"
s.strength = 0.45
s.width = s.height = 64
bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
cam = scene.camera
cam.rotation_euler = (1.1, 0.0, 0.0)
for frame, x in ((1, -1.5), (8, 1.5)):
    cam.location = (x, -8.0, 4.0)
    cam.keyframe_insert("location", frame=frame)
scene.render.engine = "CYCLES"
scene.cycles.samples = 4
bpy.ops.wm.save_as_mainfile(filepath="$OUT/scene_3d.blend")
PY
run -b "$OUT/scene.blend" --python "$OUT/make_3d.py"
run -b "$OUT/scene_3d.blend" -c keyframe_diffusion generate --save
test "$(ls "$OUT"/frames_3d/frame_*.png | wc -l)" -eq 8
test "$(ls "$OUT"/frames_3d/passes/depth/frame_*.exr | wc -l)" -eq 8
"$ENGINE_PY" - "$OUT" <<'PY'
import json, sys
from engine.image_ops import read_depth
out = sys.argv[1]
plan = json.load(open(f"{out}/frames_3d/plan.json"))
depth = read_depth(plan["frames"][0]["depth"])
assert plan["settings"]["mode"] == "FEEDBACK" and 4 < depth[32, 32] < 12 and depth[0, 0] > 1e9, depth[32, 32]
print("feedback 3D with Blender's depth on real Blender: OK")
PY
cat > "$OUT/gui_3d.py" <<'PY'
import bpy
state = {}
def setup():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "VIEW_3D"
    with bpy.context.temp_override(window=win, area=area):
        bpy.ops.screen.area_split(direction="VERTICAL", factor=0.45)
    seq = max((a for a in win.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.x)
    seq.type = "SEQUENCE_EDITOR"
    seq.spaces.active.view_type = "SEQUENCER_PREVIEW"
    seq.spaces.active.show_region_ui = True
    view = next(a for a in win.screen.areas if a.type == "VIEW_3D")
    view.spaces.active.region_3d.view_perspective = "CAMERA"
    bpy.context.scene.frame_set(6)
    state.update(win=win, seq=seq)
    bpy.app.timers.register(later, first_interval=1.5)
def later():
    for region in state["seq"].regions:
        if region.type == "UI":
            region.active_panel_category = "Diffusion"
            region.tag_redraw()
bpy.app.timers.register(setup, first_interval=2.0)
PY
"$RB" shot "$OUT/feedback_3d.png" --wait 15 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/scene_3d.blend" \
  --python "$OUT/gui_3d.py"

# The compositor side (issue 27): a scene with Suzanne (pass index 1) on a floor; Use Frames in Compositor with the
# Object Index mix; `blender -b comp.blend -a` with Generate Before Render makes the frames first, and the output keeps
# the rendered Suzanne over the generated frame; then a GUI screenshot of the compositor with the group.
cat > "$OUT/make_comp.py" <<PY
import bpy
scene = bpy.context.scene
for obj in list(scene.objects):
    if obj.type == "MESH":
        bpy.data.objects.remove(obj)
bpy.ops.mesh.primitive_monkey_add(size=2.2, location=(0, 0, 1.1))
monkey = bpy.context.active_object
monkey.pass_index = 1
bpy.ops.object.shade_smooth()
bpy.ops.mesh.primitive_plane_add(size=30)
cam = scene.camera
cam.location, cam.rotation_euler = (0.0, -7.5, 2.2), (1.42, 0.0, 0.0)
scene.frame_start, scene.frame_end = 1, 6
scene.render.engine = "CYCLES"
scene.view_settings.view_transform = "Standard"  # the generated frames as generated (docs/compositing.md)
scene.cycles.samples = 8
scene.cycles.use_denoising = False  # (Debian's Blender has no OpenImageDenoise)
scene.render.resolution_x = scene.render.resolution_y = 128
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
scene.render.filepath = "//render_comp/"
settings = scene.keyframe_diffusion
bpy.ops.keyframe_diffusion.prompt_add(text="a large orange circle on a black background", frame=1)
bpy.ops.keyframe_diffusion.prompt_add(text="a large blue square on a yellow background", frame=6)
settings.output_dir = "//frames_comp/"
settings.generate_before_render = True
settings.compositor_mix = "OBJECT_INDEX"
assert bpy.ops.keyframe_diffusion.compositor_use() == {"FINISHED"}
bpy.ops.wm.save_as_mainfile(filepath="$OUT/comp.blend")
PY
run -b --python "$OUT/make_comp.py"
run -b "$OUT/comp.blend" -a | tee "$OUT/comp.log"
grep -q "generating missing frames before render" "$OUT/comp.log"
test "$(ls "$OUT"/frames_comp/frame_*.png | wc -l)" -eq 6
test "$(ls "$OUT"/render_comp/*.png | wc -l)" -eq 6
"$ENGINE_PY" - "$OUT" <<'PY'
import sys
import cv2
import numpy as np
out = sys.argv[1]
for n in (2, 5):
    shown = cv2.imread(f"{out}/render_comp/{n:04d}.png").astype(float)
    generated = cv2.resize(cv2.imread(f"{out}/frames_comp/frame_{n:06d}.png"), (128, 128),
                           interpolation=cv2.INTER_LINEAR).astype(float)
    # The corners are floor (generated); the centre is Suzanne (the render: grey, not the generated colours).
    corner = np.abs(shown[:16, :16] - generated[:16, :16]).mean()
    centre = np.abs(shown[56:72, 56:72] - generated[56:72, 56:72]).mean()
    print(f"compositor frame {n}: corner vs generated {corner:.1f}, centre vs generated {centre:.1f}")
    assert corner < 12 and centre > 30, (n, corner, centre)
print("compositor with the generated frames, -a with Generate Before Render on real Blender: OK")
PY
cat > "$OUT/comp_gui.py" <<'PY'
import bpy
state = {}
def setup():
    win = bpy.context.window_manager.windows[0]
    scene = bpy.context.scene
    scene.frame_set(3)
    bpy.ops.render.render()  # Render Layers holds this frame, so the compositor shows it
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "NODE_EDITOR"
    area.spaces.active.tree_type = "CompositorNodeTree"
    with bpy.context.temp_override(window=win, area=area):
        bpy.ops.screen.area_split(direction="VERTICAL", factor=0.68)
    nodes, image = sorted((a for a in win.screen.areas if a.type == "NODE_EDITOR"), key=lambda a: a.x)
    nodes.spaces.active.show_region_ui = True
    image.type = "IMAGE_EDITOR"
    image.spaces.active.image = bpy.data.images["Render Result"]
    state.update(win=win, nodes=nodes, image=image)
    bpy.app.timers.register(later, first_interval=1.5)
def later():
    nodes = state["nodes"]
    for region in nodes.regions:
        if region.type == "UI":
            region.active_panel_category = "Diffusion"
            region.tag_redraw()
    for area in (nodes, state["image"]):
        region = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=state["win"], area=area, region=region):
            if area.type == "NODE_EDITOR":
                bpy.ops.node.view_all()
            else:
                bpy.ops.image.view_all(fit_view=True)
bpy.app.timers.register(setup, first_interval=2.0)
PY
"$RB" shot "$OUT/compositor.png" --wait 25 --size 1400x800 --bind "$BASE" --bind "$OUT" -- "$OUT/comp.blend" \
  --python "$OUT/comp_gui.py"

# The preferences: Check Engine with the external engine Python, then Create Engine Environment run modal in the GUI
# (offline from a folder holding one pure-Python wheel): a progress bar with Cancel while pip works, then Engine Python
# points at the new environment. Blender's Python is Debian's python3.13 here, whose venv needs python3-venv.
"$RB" sh -- "python3 -c 'import ensurepip' 2>/dev/null || apt-get install -y -q python3-venv >/dev/null"
mkdir -p "$OUT/offline_wheels"
"$ENGINE_PY" -m pip download --quiet --no-deps --only-binary=:all: filelock==4.2.12 -d "$OUT/offline_wheels" 2>/dev/null
echo "filelock==4.2.12" > "$OUT/small_requirements.txt"
cat > "$OUT/prefs_gui.py" <<PY
import bpy, importlib, json, subprocess
import addon_utils
OUT, PKG = "$OUT", "bl_ext.user_default.keyframe_diffusion"
VENV = len(__import__("sys").argv) > 1 and __import__("sys").argv[-1] == "venv"
state = {"seen_running": False, "progress": [], "shot": False}
def setup():
    win = bpy.context.window_manager.windows[0]
    area = max(win.screen.areas, key=lambda a: a.width * a.height)
    area.type = "PREFERENCES"
    bpy.context.preferences.active_section = "ADDONS"
    bpy.context.window_manager.addon_search = "Keyframe Diffusion"
    mod = next(m for m in addon_utils.modules() if m.__name__ == PKG)
    addon_utils.module_bl_info(mod)["show_expanded"] = True
    state.update(win=win, area=area)
    with bpy.context.temp_override(window=win, area=area):
        if not VENV:
            bpy.ops.keyframe_diffusion.check_engine()
            return
        prefs = bpy.context.preferences.addons[PKG].preferences
        prefs.venv_dir, prefs.venv_wheels_dir = OUT + "/engine-venv", OUT + "/offline_wheels"
        state["invoke"] = sorted(bpy.ops.keyframe_diffusion.engine_venv_create(
            "INVOKE_DEFAULT", requirements=OUT + "/small_requirements.txt"))
    bpy.app.timers.register(watch, first_interval=0.05)
def watch():
    session = importlib.import_module(PKG + ".engine_link.session")
    if session.installing() or session.state.install["running"]:
        state["seen_running"] = True
        state["progress"].append(round(session.state.install["progress"], 3))
        if not state["shot"] and session.state.install["progress"] > 0:  # the X screen, as the user sees it now
            with bpy.context.temp_override(window=state["win"]):
                bpy.ops.wm.redraw_timer(type="DRAW_WIN_SWAP", iterations=1)
            subprocess.run(["import", "-window", "root", OUT + "/venv_running.png"])
            state["shot"] = True
        return 0.05
    prefs = bpy.context.preferences.addons[PKG].preferences
    result = {k: state[k] for k in ("invoke", "seen_running", "progress", "shot")}
    result.update(python_path=prefs.python_path, message=session.state.install["message"], error=session.state.install["error"])
    open(OUT + "/venv.log", "w").write(json.dumps(result) + "\n")
bpy.app.timers.register(setup, first_interval=2.0)
PY
"$RB" shot "$OUT/preferences.png" --wait 15 --size 1400x900 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" \
  --python "$OUT/prefs_gui.py"
"$RB" shot "$OUT/venv_done.png" --wait 25 --size 1400x900 --bind "$BASE" --bind "$OUT" -- "$OUT/scene.blend" \
  --python "$OUT/prefs_gui.py" -- venv
cat "$OUT/venv.log"
"$ENGINE_PY" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
log = json.load(open(f"{out}/venv.log"))
assert log["invoke"] == ["RUNNING_MODAL"] and log["seen_running"] and log["shot"] and not log["error"], log
# (the venv's python links to the chroot's /usr/bin/python3.13, so only the link exists out here)
assert log["python_path"] == f"{out}/engine-venv/bin/python" and os.path.lexists(log["python_path"]), log
assert os.path.isfile(f"{out}/engine-venv/.keyframe_diffusion_ready") and log["progress"][-1] > 0, log
print("engine environment created modal in the GUI: OK")
PY
# Back to the external engine Python for later runs (the preferences live in the chroot's home).
run -b --python-expr "import bpy; bpy.context.preferences.addons['bl_ext.user_default.keyframe_diffusion'].preferences.python_path = '$ENGINE_PY'; bpy.ops.wm.save_userpref()"

echo "real Blender end to end: OK (frames in $OUT/frames, screenshots $OUT/generating.png, $OUT/timeline.png, $OUT/audio.png, $OUT/feedback_3d.png, $OUT/compositor.png, $OUT/preferences.png, $OUT/venv_running.png)"

"""Run inside a bpy wheel (4.2 LTS, 4.5 LTS, 5.0, 5.2 LTS): install the built zip, generate frames through a worker on
an external engine Python, put them into the compositor (Use Frames in Compositor) and render the compositor; print
what came out as JSON on the last line. tests/blender/test_compositor.py reads it.

    python tests/blender/compositor_check.py ZIP ENGINE_PYTHON OUTPUT_DIR

The scene: a camera looking at a cube (object pass index 3, material pass index 2) lit by its own red emission in
front of a green world, rendered by Cycles at 64x64 with one sample and a tiny pixel filter, so every pixel is either
cube or world.
"""

import json
import math
import os
import sys
import tempfile

zip_path, engine_python, out = sys.argv[1:4]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="kd-user-")
import bpy  # noqa: E402

import blender_helpers  # noqa: E402 (beside this script)

result = {"blender": bpy.app.version_string}
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
package = "bl_ext.user_default.keyframe_diffusion"
bpy.context.preferences.addons[package].preferences.python_path = engine_python
compositor = sys.modules[package].run.compositor
compat = sys.modules[package].settings.compat
SIZE = 64


def build_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 6
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    render.filter_size = 0.01
    render.resolution_x = render.resolution_y = SIZE
    render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    compat.set_image_output(render.image_settings, "PNG")
    render.image_settings.color_mode = "RGBA"
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.0, 1.0, 0.0, 1.0)
    scene.world = world
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    camera.location = (0.0, -6.0, 0.0)
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    cube = blender_helpers.cube()
    mesh = cube.data
    cube.pass_index = 3
    material = bpy.data.materials.new("Red")
    material.use_nodes = True
    material.pass_index = 2
    nodes = material.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (1.0, 0.0, 0.0, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(emission.outputs[0], output.inputs[0])
    mesh.materials.append(material)
    scene.collection.objects.link(cube)
    settings = scene.keyframe_diffusion
    settings.model = "embedded:tiny"
    settings.frame_range = "SCENE"
    settings.steps = 2
    settings.width = settings.height = SIZE
    for frame in range(1, 7):  # a key with its own seed at every frame: every frame differs, so a wrong one shows
        bpy.ops.keyframe_diffusion.prompt_add(text="a red circle", frame=frame)
    return scene


def pixels(path):
    """RGB values 0-255 of a PNG, rows bottom to top (Blender's order)."""
    image = bpy.data.images.load(path, check_existing=False)
    values = list(image.pixels[:])
    channels = image.channels
    bpy.data.images.remove(image)
    return [[round(values[i + c] * 255) for c in range(3)] for i in range(0, len(values), channels)]


def render(scene, frame, name):
    scene.frame_set(frame)
    scene.render.filepath = os.path.join(out, "renders", f"{name}.png")
    bpy.ops.render.render(write_still=True)
    return pixels(scene.render.filepath)


def difference(a, b, where=None):
    """Mean absolute difference per channel (0-255) over the pixels `where` says (all by default), and their count."""
    chosen = [i for i in range(len(a)) if where is None or where[i]]
    total = sum(abs(x - y) for i in chosen for x, y in zip(a[i], b[i]))
    return round(total / max(1, 3 * len(chosen)), 3), len(chosen)


def inner(mask):
    """The mask without its one-pixel border (edge pixels mix both sides)."""
    def at(x, y):
        return 0 <= x < SIZE and 0 <= y < SIZE and mask[y * SIZE + x]
    return [all(at(i % SIZE + dx, i // SIZE + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)) for i in range(len(mask))]


def frame_file(folder, frame):
    return os.path.join(folder, f"frame_{frame:06d}.png")


def user_tree(scene):
    """The user's own nodes: a Brightness/Contrast and a Viewer fed by Render Layers, beside the default output link."""
    tree = compat.scene_compositor(scene)
    layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    bright = tree.nodes.new("CompositorNodeBrightContrast")
    bright.name = "User Bright"
    bright.location = (-50, 400)
    viewer = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeViewer"), None) or \
        tree.nodes.new("CompositorNodeViewer")
    tree.links.new(layers.outputs["Image"], bright.inputs[0])
    tree.links.new(bright.outputs[0], viewer.inputs[0])
    return tree


def snapshot(tree):
    nodes = {n.name: (n.bl_idname, tuple(n.location), [tuple(s.default_value) if hasattr(s.default_value, "__len__")
                                                       else s.default_value for s in n.inputs
                                                       if hasattr(s, "default_value")]) for n in tree.nodes}
    links = {(lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier)
             for lk in tree.links}
    return nodes, links


def ours(scene):
    tree = compat.scene_compositor(scene, create=False)
    return ([n.name for n in tree.nodes if n.bl_idname == "CompositorNodeGroup"],
            [g.name for g in bpy.data.node_groups if compositor.MARK in g])


scene = build_scene()
settings = scene.keyframe_diffusion
folder = os.path.join(out, "frames")
settings.output_dir = folder
result["generate"] = sorted(bpy.ops.keyframe_diffusion.generate())

# The user's tree, then the group put in twice (the second time updates it).
tree = user_tree(scene)
before = snapshot(tree)
result["first"] = sorted(bpy.ops.keyframe_diffusion.compositor_use())
result["second"] = sorted(bpy.ops.keyframe_diffusion.compositor_use())
tree = compat.scene_compositor(scene, create=False)
after = snapshot(tree)
node = compositor.group_node(scene)
result["ours"] = ours(scene)
result["user_nodes_kept"] = all(after[0].get(name) == value for name, value in before[0].items())
result["links_gone"] = sorted(map(list, before[1] - after[1]))
result["links_added"] = sorted(map(list, after[1] - before[1]))
result["group_name"] = node.node_tree.name
result["sequencer_off"] = not scene.render.use_sequencer

# Factor 1: scene frame N shows generated frame N.
shown = {n: render(scene, n, f"factor_{n}") for n in (2, 5)}
result["factor"] = {n: difference(shown[n], pixels(frame_file(folder, n)))[0] for n in (2, 5)}
result["factor_wrong_frame"] = {n: difference(shown[n], pixels(frame_file(folder, n + 1)))[0] for n in (2, 5)}
# The render alone (Factor 0), for the masked mixes.
node.inputs["Factor"].default_value = 0.0
plain = render(scene, 3, "plain_3")
result["factor_0"] = difference(plain, render(scene, 3, "plain_3b"))[0]
cube = [p[0] > 128 and p[1] < 128 for p in plain]
world = [p[1] > 128 and p[0] < 128 for p in plain]
result["cube_pixels"] = sum(cube)
generated3 = pixels(frame_file(folder, 3))
node.inputs["Factor"].default_value = 1.0


def masked(name, mix, **values):
    """Render frame 3 with `mix`: (on the cube: output - render, output - generated; elsewhere: the same)."""
    settings.compositor_mix = mix
    bpy.ops.keyframe_diffusion.compositor_use()
    for key, value in values.items():
        node.inputs[key].default_value = value
    shown = render(scene, 3, name)
    return {"cube": [difference(shown, plain, inner(cube)), difference(shown, generated3, inner(cube))],
            "world": [difference(shown, plain, inner(world)), difference(shown, generated3, inner(world))]}


result["object_index"] = masked("object_index", "OBJECT_INDEX", Index=3.0)
result["object_index_other"] = masked("object_index_other", "OBJECT_INDEX", Index=1.0)
result["material_index"] = masked("material_index", "MATERIAL_INDEX", Index=2.0)
result["depth"] = masked("depth", "DEPTH", Near=6.0, Far=7.0)
result["depth_inverted"] = masked("depth_inverted", "DEPTH", Invert=1.0)
node.inputs["Invert"].default_value = 0.0
painted = bpy.data.images.new("Painted", SIZE, SIZE)
painted.pixels.foreach_set([1.0 if (i // 4) % SIZE < SIZE // 2 else 0.0 if i % 4 != 3 else 1.0
                            for i in range(SIZE * SIZE * 4)])  # the left half white
settings.compositor_mask_image = painted
left = [(i % SIZE) < SIZE // 2 for i in range(SIZE * SIZE)]
right = [not v for v in left]
settings.compositor_mix = "IMAGE"
bpy.ops.keyframe_diffusion.compositor_use()
shown = render(scene, 3, "painted")
result["painted"] = {"left": difference(shown, generated3, inner(left)),
                     "right": difference(shown, plain, inner(right))}
# A Mask datablock (as the Mask editor or a mask strip makes): a square over the left half, from x -0.5 to 0.5.
mask = bpy.data.masks.new("Left Half")
spline = mask.layers.new().splines.new()
spline.points.add(3)
for point, co in zip(spline.points, ((-0.5, -0.5), (-0.5, 1.5), (0.5, 1.5), (0.5, -0.5))):
    point.co = point.handle_left = point.handle_right = co
    point.handle_type = "VECTOR"
spline.use_cyclic = True
settings.compositor_mask = mask
settings.compositor_mix = "MASK"
bpy.ops.keyframe_diffusion.compositor_use()
shown = render(scene, 3, "mask")
result["mask"] = {"left": difference(shown, generated3, inner(left)), "right": difference(shown, plain, inner(right))}
result["ours_after_mixes"] = ours(scene)

# Animated: Factor keyed 0 at frame 2 and 1 at frame 5 on the group node (as pressing I over it in the sidebar does).
settings.compositor_mix = "FACTOR"
bpy.ops.keyframe_diffusion.compositor_use()
factor = node.inputs["Factor"]
factor.default_value = 0.0
factor.keyframe_insert("default_value", frame=2)
factor.default_value = 1.0
factor.keyframe_insert("default_value", frame=5)
shown2, shown5 = render(scene, 2, "keyed_2"), render(scene, 5, "keyed_5")
node.inputs["Factor"].keyframe_delete("default_value", frame=2)
node.inputs["Factor"].keyframe_delete("default_value", frame=5)
node.inputs["Factor"].default_value = 0.0
plain2 = render(scene, 2, "plain_2")
node.inputs["Factor"].default_value = 1.0
result["keyed"] = {"2_vs_render": difference(shown2, plain2)[0],
                   "5_vs_generated": difference(shown5, pixels(frame_file(folder, 5)))[0]}

# The strip moved two frames later in the Sequencer: the compositor follows it at the next render (render_init).
strip = sys.modules[package].run.strips.find_strip(scene)
compat.set_content_start(strip, compat.content_start(strip) + 2)
bpy.context.view_layer.update()  # a depsgraph update, as any edit in the Sequencer makes: the group follows at once
frames_node = node.node_tree.nodes["Generated Frames"]
result["followed"] = [frames_node.frame_start, frames_node.frame_offset, frames_node.frame_duration]
result["moved"] = difference(render(scene, 5, "moved_5"), pixels(frame_file(folder, 3)))[0]
result["moved_before_start"] = difference(render(scene, 2, "moved_2"), plain2)[0]
compat.set_content_start(strip, compat.content_start(strip) - 2)

# The upscaled frames as the source: an Upscaled strip over files twice the size (made here from the frames).
upscaled = os.path.join(out, "upscaled")
os.makedirs(upscaled, exist_ok=True)
for n in range(1, 7):
    image = bpy.data.images.load(frame_file(folder, n), check_existing=False)
    image.scale(SIZE * 2, SIZE * 2)
    image.filepath_raw = frame_file(upscaled, n)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
sys.modules[package].run.strips.update_strip(scene, upscaled, list(range(1, 7)), upscaled=True,
                                             size=(SIZE * 2, SIZE * 2))
settings.compositor_source = "UPSCALED"
bpy.ops.keyframe_diffusion.compositor_use()
frames_node = node.node_tree.nodes["Generated Frames"]
shown = render(scene, 4, "upscaled_4")
result["upscaled"] = {"file": bpy.path.abspath(frames_node.image.filepath),
                      "vs_generated": difference(shown, pixels(frame_file(folder, 4)))[0],
                      "vs_wrong_frame": difference(shown, pixels(frame_file(folder, 5)))[0]}
settings.compositor_source = "FRAMES"
bpy.ops.keyframe_diffusion.compositor_use()

# Errors a user can act on.
settings.compositor_mask = None
errors = {}
for mix, engine in (("OBJECT_INDEX", "BLENDER_EEVEE_NEXT" if bpy.app.version < (5, 0, 0) else "BLENDER_EEVEE"),
                    ("MASK", "CYCLES")):
    settings.compositor_mix = mix
    scene.render.engine = engine
    try:
        compositor.use_frames(scene)
        errors[mix] = None
    except compositor.CompositorError as e:
        errors[mix] = str(e)
scene.render.engine = "CYCLES"
settings.compositor_mix = "FACTOR"
result["errors"] = errors

# A tree the user built into the output (Render Layers > Blur > output): their link stays, the group is only added.
built = build_scene()
tree = compat.scene_compositor(built)
layers = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
blur = tree.nodes.new("CompositorNodeBlur")
tree.links.new(layers.outputs["Image"], blur.inputs[0])
target = compat.compositor_output(tree)
tree.links.new(blur.outputs[0], target)
built.keyframe_diffusion.output_dir = os.path.join(out, "built")
compositor_said = compositor.use_frames(built)
result["built"] = {"output_from": compat.compositor_output(tree).links[0].from_node.name, "said": compositor_said}

# Generate Before Render with -a (render(animation=True)), on a scene never generated: the frames are made first,
# then the compositor shows them.
fresh = build_scene()
fresh.frame_end = 3
fresh.keyframe_diffusion.output_dir = os.path.join(out, "fresh")
fresh.keyframe_diffusion.generate_before_render = True
fresh.keyframe_diffusion.compositor_mix = "OBJECT_INDEX"
compositor.use_frames(fresh)  # before any strip: renders switch to the compositor, so the later strip won't hide it
compositor.group_node(fresh).inputs["Index"].default_value = 3.0
fresh.keyframe_diffusion.generate_before_render = False
result["before_frames"] = difference(render(fresh, 2, "fresh_before"), plain)[0]  # no frame yet: the render
fresh.keyframe_diffusion.generate_before_render = True
fresh.render.filepath = os.path.join(out, "animation", "")
bpy.ops.render.render(animation=True)
animation = [pixels(os.path.join(out, "animation", f"{n:04d}.png")) for n in (1, 2, 3)]
made = [pixels(frame_file(os.path.join(out, "fresh"), n)) for n in (1, 2, 3)]
# Elsewhere than the cube each frame is its generated frame (not the next one's); on the cube, the render.
result["animation"] = [difference(animation[i], made[i], inner(world))[0] for i in range(3)]
result["animation_wrong_frame"] = [difference(animation[i], made[(i + 1) % 3], inner(world))[0] for i in range(3)]
result["animation_cube"] = [difference(animation[i], plain, inner(cube))[0] for i in range(3)]

print(json.dumps(result))

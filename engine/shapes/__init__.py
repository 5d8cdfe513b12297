"""The embedded 'shapes' model's world: a procedural dataset of flat shapes with captions (`dataset`), a scorer that
reads colour, shape and position back from an image by pixel statistics (`scorer`), and the trained pipeline folder
(`model/`, built by scripts/train_shapes_model.py). No bpy, no model needed to draw or to score."""

# The settings the model is graded at and the demo uses: its native size (dataset.SIZE) and a few DPM-Solver++ steps.
STEPS = 15
GUIDANCE = 3.0

"""The embedded 'shapes' model's world: a procedural dataset of flat shapes with captions (`dataset`), a scorer that
reads colour, shape and position back from an image by pixel statistics (`scorer`), and the trained pipeline folder
(`model/`, built by scripts/train_shapes_model.py). No bpy, no model needed to draw or to score."""

# The settings the model is graded at and the demo uses: its native size (dataset.SIZE) and DPM-Solver++ steps.
# Measured on 200 held-out captions (colour and shape both right): 15 steps at guidance 3 93.5%, 20 at 6 97%, 30 at 6
# 97.5%, at 7 96%, where a crossfade's middle frames also stray (a red square between a blue circle and a blue square).
STEPS = 30
GUIDANCE = 6.0

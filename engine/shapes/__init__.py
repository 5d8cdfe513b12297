"""The embedded 'shapes' model's world: a procedural dataset of flat shapes with captions (`dataset`), a scorer that
reads colour, shape and position back from an image by pixel statistics (`scorer`), and the trained pipeline folder
(`model/`, built by scripts/train_shapes_model.py). No bpy, no model needed to draw or to score."""

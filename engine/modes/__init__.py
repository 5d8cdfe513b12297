"""Generation modes. Each takes a loaded pipeline and plan records and yields (frame, image) pairs.

Later issues add feedback (img2img with motion), video/scene input and clip (AnimateDiff, text-to-video) here.
"""

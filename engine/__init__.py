"""Keyframe Diffusion's engine: renders baked plans with diffusers. Never imports bpy.

Importable both as the extension's subpackage and as a top-level `engine` (the worker runs with the extension folder
on its path), so everything inside uses relative imports. Importing this package loads nothing heavy.
"""

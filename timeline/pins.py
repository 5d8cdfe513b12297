"""Shot mode's pins: pictures pinned at timeline frames, each shown as a timeline marker the user can move.

A pin owns the marker named "Pin: <label>" (settings/properties.py): the marker's frame is the pin's frame. The pin
also stores that frame, so a pin whose marker was deleted (or renamed) stays where it was; `sync_stored_frames` keeps
the stored frames in step with the markers before every bake (the bake itself only reads).
"""

from __future__ import annotations

import os
import uuid

import bpy

from ..engine import vocabulary as vocab
from ..settings.properties import PIN_MARKER_PREFIX, pin_marker, unique_pin_label

_SOURCE_LABELS = {choice[0]: choice[1] for choice in vocab.PIN_SOURCES}


class PinError(ValueError):
    """A pin that can't be added where asked; the message says why."""


def pin_at(scene, frame: int):
    """The pin at `frame`, or None."""
    return next((pin for pin in scene.keyframe_diffusion.pins if pin.frame == frame), None)


def default_label(source: str, filepath: str = "", strip: str = "") -> str:
    """What a new pin is called: its file's or strip's name, else its source (Render, Generated)."""
    if source == "FILE" and filepath.strip():
        return os.path.splitext(bpy.path.basename(filepath))[0] or "Image"
    if source == "STRIP" and strip.strip():
        return strip.strip()
    return {"RENDER": "Render", "GENERATED": "Generated"}.get(source, _SOURCE_LABELS.get(source, "Pin"))


def add_pin(scene, source: str = "RENDER", frame: int | None = None, label: str = "", filepath: str = "",
            strip: str = "", strength: float = 1.0):
    """A new pin at `frame` (default: the current frame) with its marker; the active pin. Refuses a frame that has a
    pin already (two pictures at one frame would contradict each other)."""
    settings = scene.keyframe_diffusion
    frame = scene.frame_current if frame is None else frame
    there = pin_at(scene, frame)
    if there is not None:
        raise PinError(f"frame {frame} has a pin already ('{there.name}'): move its marker, or remove it first")
    pin = settings.pins.add()
    pin.source, pin.filepath, pin.strip, pin.strength = source, filepath, strip, strength
    pin.name = unique_pin_label(scene, label or default_label(source, filepath, strip), pin)
    pin.stored_frame = frame
    pin.token = uuid.uuid4().hex[:12]
    scene.timeline_markers.new(pin.marker, frame=frame)
    settings.active_pin = len(settings.pins) - 1
    return pin


def remove_pin(scene, index: int) -> None:
    """Remove the pin at `index` and its marker."""
    settings = scene.keyframe_diffusion
    pin = settings.pins[index]
    marker = pin_marker(pin)
    if marker is not None:
        scene.timeline_markers.remove(marker)
    settings.pins.remove(index)
    settings.active_pin = max(0, min(index, len(settings.pins) - 1))


def restore_marker(scene, pin):
    """Give a pin whose marker is gone a new one at its stored frame."""
    marker = pin_marker(pin)
    if marker is not None:
        return marker
    pin.name = unique_pin_label(scene, pin.name, pin)
    pin.marker = PIN_MARKER_PREFIX + pin.name
    return scene.timeline_markers.new(pin.marker, frame=pin.stored_frame)


def sync_stored_frames(scene) -> None:
    """Each pin's stored frame becomes its marker's frame (where the marker still is)."""
    for pin in scene.keyframe_diffusion.pins:
        marker = pin_marker(pin)
        if marker is not None and pin.stored_frame != marker.frame:
            pin.stored_frame = marker.frame


def pin_markers(scene) -> set[str]:
    """The names of the markers pins own (not cuts, whatever they are called)."""
    return {pin.marker for pin in scene.keyframe_diffusion.pins if pin.marker}

"""The embedded tiny model is built once into the cache, even when several processes ask for it at once."""

import os
import subprocess
import sys

from common import ROOT

_CHILD = """
import os, sys
from engine.models.embedded import tiny_model_dir
from diffusers import StableDiffusionPipeline
folder = tiny_model_dir()
StableDiffusionPipeline.from_pretrained(folder)  # loads whole: nobody swapped the folder out meanwhile
print(folder, os.stat(os.path.join(folder, "model_index.json")).st_ino)
"""


def test_processes_asking_at_once_share_one_build(tmp_path):
    env = {**os.environ, "KEYFRAME_DIFFUSION_CACHE": str(tmp_path), "PYTHONPATH": ROOT}
    children = [subprocess.Popen([sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [child.communicate(timeout=600) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], [err[-2000:] for _, err in results]
    # One build: every process found the same files (the same inode), none rebuilt over another's.
    assert len({out.split()[-1] for out, _ in results}) == 1
    leftovers = [name for name in os.listdir(tmp_path / "models") if name.startswith(".tiny-")]
    assert leftovers == []

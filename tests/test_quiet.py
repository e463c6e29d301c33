"""TensorFlow's C++ start-up noise stays out of job logs and the terminal (mlaas4hep.quiet)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from support import need

NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
         "I0000 00:00:1795936072.102202   14606 port.cc:153] oneDNN custom operations are on. You may see "
         "slightly different numerical results.\n"
         "E0000 00:00:1795936072.2   14606 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register "
         "factory for plugin cuDNN when one has already been registered\n")


def _run(code: str, tmp_path, path: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (path, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)


def test_the_noise_is_dropped_and_everything_else_kept(tmp_path):
    """A stand-in 'tensorflow' package that writes absl's lines and a real message straight to
    file descriptor 2, as the C++ library does."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"import os\nos.write(2, {NOISE.encode()!r})\n"
                                      "os.write(2, b'a real problem\\n')\nVALUE = 42\n")
    code = ("import sys\nfrom mlaas4hep import quiet\nquiet.install()\nimport tensorflow\n"
            "print(tensorflow.VALUE, file=sys.stderr)\n")
    out = _run(code, tmp_path, str(tmp_path / "fake"))
    assert out.returncode == 0, out.stderr
    assert out.stderr == "a real problem\n42\n"
    plain = _run("import tensorflow", tmp_path, str(tmp_path / "fake"))  # without install(): all of it
    assert plain.stderr == NOISE + "a real problem\n"


@pytest.mark.slow
def test_the_command_line_trains_a_keras_model_without_tensorflows_start_up_lines(tmp_path):
    need(importlib.util.find_spec("tensorflow") is not None, "TensorFlow is not installed")
    from mlaas4hep.datagen import write_tth
    from support import keras_model

    write_tth(tmp_path / "s.root", 300, signal=True, seed=1)
    write_tth(tmp_path / "b.root", 300, signal=False, seed=1)
    (tmp_path / "model.py").write_text(keras_model())
    (tmp_path / "params.json").write_text('{"chunk_size": 300, "epochs": 1, "identifier": "run,event,luminosityBlock"}')
    out = subprocess.run([sys.executable, "-m", "mlaas4hep.cli", "workflow", "--files", "s.root,b.root", "--labels",
                          "1,0", "--model", "model.py", "--params", "params.json"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "artifact: " in out.stdout  # it did train, through keras and TensorFlow
    assert "absl" not in out.stderr and "oneDNN" not in out.stderr and "I0000" not in out.stderr, out.stderr

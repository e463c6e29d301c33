"""The XRootD bindings crash a process that loaded TensorFlow first: mlaas4hep loads them just
before TensorFlow is imported (or when a root:// URL is read, in a process without TensorFlow),
and refuses root:// clearly (no segmentation fault) where TensorFlow came first."""

import subprocess
import sys

from support import need


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def _bindings_and_tensorflow() -> None:
    for module in ("XRootD.client", "tensorflow"):
        found = _python(f"import importlib.util as u; print(u.find_spec('{module.split('.')[0]}') is not None)")
        need(found.stdout.strip() == "True", f"{module} is not installed")


def test_import_mlaas4hep_then_tensorflow_then_reading_root_urls_works():
    _bindings_and_tensorflow()
    done = _python("import mlaas4hep, tensorflow, sys; from mlaas4hep import xrootd; "
                   "print(xrootd.client('root://host//f.root').__name__)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("XRootD.client")


def test_the_bindings_load_only_when_needed_and_before_keras_brings_tensorflow():
    _bindings_and_tensorflow()
    alone = _python("import sys, mlaas4hep\nprint('XRootD.client' in sys.modules)\n"
                    "from mlaas4hep import xrootd\nprint(xrootd.client('root://host//f.root').__name__)")
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert alone.stdout.split() == ["False", "XRootD.client"]
    # keras 3 with its TensorFlow backend imports tensorflow: the bindings come just before it
    keras = _python("import os; os.environ.setdefault('KERAS_BACKEND', 'tensorflow')\n"
                    "import sys, mlaas4hep, keras\nprint(keras.backend.backend(), 'tensorflow' in sys.modules)\n"
                    "from mlaas4hep import xrootd\nprint(xrootd.client('root://host//f.root').__name__)")
    assert keras.returncode == 0, f"exit {keras.returncode}: {keras.stderr[-2000:]}"
    assert keras.stdout.split() == ["tensorflow", "True", "XRootD.client"]


def test_tensorflow_first_gives_a_clear_error_not_a_crash():
    _bindings_and_tensorflow()
    done = _python("import tensorflow\nimport mlaas4hep\nfrom mlaas4hep import xrootd\n"
                   "try:\n    xrootd.client('root://host//f.root')\n"
                   "except mlaas4hep.DataError as err:\n    print('refused:', err)\n")
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "refused:" in done.stdout
    assert "loaded after TensorFlow" in done.stdout and "root://host//f.root" in done.stdout
    assert "import mlaas4hep before tensorflow" in done.stdout

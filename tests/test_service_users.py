"""A user's folder in the service (mlaas4hep.service.users): which names a job may read, and as
what. No server needed."""

from __future__ import annotations

import os

import pytest

from mlaas4hep.errors import ConfigError
from mlaas4hep.service.users import UserSpace, check_name


@pytest.fixture
def space(tmp_path):
    root = tmp_path / "users" / "u1"
    (root / "uploads" / "abc" / "data").mkdir(parents=True)
    (root / "uploads" / "abc" / "data" / "sig.root").write_bytes(b"root")
    other = tmp_path / "users" / "u2" / "uploads"
    other.mkdir(parents=True)
    (other / "theirs.root").write_bytes(b"root")
    os.symlink(other / "theirs.root", root / "uploads" / "abc" / "link.root")  # not from an archive; made here
    return UserSpace(root)


def test_files_inside_the_folder_become_real_paths(space):
    path = space.resolve_file("uploads/abc/data/sig.root", "files[0]")
    assert path == os.path.realpath(space.root / "uploads/abc/data/sig.root")
    assert space.resolve_file(path, "files[0]") == path
    assert space.resolve_file("root://eos.cern.ch//store/a.root", "files[0]") == "root://eos.cern.ch//store/a.root"


@pytest.mark.parametrize("name, words", [
    ("../u2/uploads/theirs.root", "outside your folder"),
    ("uploads/abc/link.root", "outside your folder"),
    ("/etc/passwd", "outside your folder"),
    ("~/.bashrc", "outside your folder"),
    ("uploads/abc/nope.root", "not found in your folder"),
    ("file:///etc/passwd", "only root://"),
    ("s3://bucket/a.root", "only root://"),
    ("0" * 5000, "cannot be a file in your folder: File name too long"),
    ("uploads/abc/data/sig.root/x.root", "not found in your folder"),
])
def test_names_outside_the_folder_are_refused(space, name, words):
    with pytest.raises(ConfigError, match=words):
        space.resolve_file(name, "files[0]")


def test_with_a_redirector_missing_names_become_its_urls_and_never_local_paths(space):
    redirector = "root://cms-xrd-global.cern.ch/"
    assert space.resolve_file("/store/mc/a.root", "files[0]", redirector=redirector) == \
        "root://cms-xrd-global.cern.ch//store/mc/a.root"
    assert space.resolve_file("store/b.root", "files[0]", redirector=redirector) == \
        "root://cms-xrd-global.cern.ch//store/b.root"
    assert space.resolve_file("uploads/abc/data/sig.root", "files[0]", redirector=redirector).startswith(
        str(os.path.realpath(space.root)))
    with pytest.raises(ConfigError, match="outside your folder"):
        space.resolve_file("/etc/passwd", "files[0]", redirector=redirector)  # exists here: not an LFN
    with pytest.raises(ConfigError, match="only root://"):
        space.resolve_file("file:///etc/passwd", "files[0]", redirector=redirector)
    with pytest.raises(ConfigError, match="redirector must be"):
        space.resolve_file("/store/a.root", "files[0]", redirector="file:///")


@pytest.mark.parametrize("name", [None, "", "../x", ".hidden", "a/b", "x" * 65, "na me"])
def test_folder_names_are_checked(name):
    with pytest.raises(ConfigError):
        check_name(name)

"""Unpacking users' archives (mlaas4hep.service.archive): what is refused, and that nothing of a
refused archive stays on disk. No server needed."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from mlaas4hep.service.archive import UnsafeArchive, unpack_tar_gz


def make_tar_gz(path, members, level=6):
    """``members``: (TarInfo, bytes or None) pairs, written as they are (no name checks)."""
    with gzip.open(path, "wb", compresslevel=level) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def test_plain_files_and_folders_are_unpacked(tmp_path):
    archive = make_tar_gz(tmp_path / "ok.tar.gz", [
        special("inputs", tarfile.DIRTYPE),
        file_member("inputs/model.py", b"def model(idim):\n    pass\n"),
        file_member("inputs/sub/files.txt", b"a.root\n"),
        file_member("./inputs/params.json", b"{}"),
    ])
    result = unpack_tar_gz(archive, tmp_path / "out")
    assert result.files == ["inputs/model.py", "inputs/params.json", "inputs/sub/files.txt"]
    assert result.bytes == 26 + 7 + 2
    assert (tmp_path / "out/inputs/model.py").read_text().startswith("def model")
    assert oct((tmp_path / "out/inputs/model.py").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("members, reason", [
    ([file_member("../evil.txt")], "'..' is not allowed"),
    ([file_member("inputs/../../evil.txt")], "'..' is not allowed"),
    ([file_member("/tmp/evil.txt")], "absolute paths are not allowed"),
    ([special("inputs/link", tarfile.SYMTYPE, "/etc/passwd")], "links are not allowed"),
    ([file_member("inputs/a.txt"), special("inputs/hard", tarfile.LNKTYPE, "inputs/a.txt")], "links are not allowed"),
    ([special("inputs/fifo", tarfile.FIFOTYPE)], "not a FIFO"),
    ([special("inputs/tty", tarfile.CHRTYPE)], "not a device"),
    ([special("inputs/disk", tarfile.BLKTYPE)], "not a device"),
], ids=["tar-slip", "nested-slip", "absolute", "symlink", "hardlink", "fifo", "char-device", "block-device"])
def test_unsafe_members_are_refused_and_nothing_stays(tmp_path, members, reason):
    archive = make_tar_gz(tmp_path / "bad.tar.gz", [file_member("inputs/first.txt")] + members)
    with pytest.raises(UnsafeArchive, match=reason):
        unpack_tar_gz(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_a_zip_bomb_stops_at_the_cap(tmp_path):
    """64 MiB of zeros in a ~64 KiB archive: refused by its declared size, before writing it."""
    big = 64 << 20
    info = tarfile.TarInfo("inputs/zeros.bin")
    info.size = big
    path = tmp_path / "bomb.tar.gz"
    with gzip.open(path, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        tar.addfile(info, io.BytesIO(bytes(big)))
    assert path.stat().st_size < big // 500
    with pytest.raises(UnsafeArchive, match="unpacks to more than 1048576 bytes"):
        unpack_tar_gz(path, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists()


def test_decompressed_bytes_are_capped_even_when_headers_lie(tmp_path):
    """A stream of many small members: the decompressed total is capped, not only the declared sizes."""
    members = [file_member(f"inputs/f{i:04d}.txt", bytes(4096)) for i in range(300)]
    archive = make_tar_gz(tmp_path / "many.tar.gz", members)
    with pytest.raises(UnsafeArchive, match="more than 100000 bytes"):
        unpack_tar_gz(archive, tmp_path / "out", max_bytes=100_000)
    with pytest.raises(UnsafeArchive, match="more than 50 members"):
        unpack_tar_gz(archive, tmp_path / "out2", max_members=50)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_what_is_not_a_tar_gz_is_refused(tmp_path):
    (tmp_path / "plain.txt").write_bytes(b"hello")
    with pytest.raises(UnsafeArchive, match="not a readable tar.gz"):
        unpack_tar_gz(tmp_path / "plain.txt", tmp_path / "out")
    truncated = make_tar_gz(tmp_path / "t.tar.gz", [file_member("a.txt", os.urandom(50_000))])
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsafeArchive, match="not a readable tar.gz"):
        unpack_tar_gz(truncated, tmp_path / "out")
    assert not (tmp_path / "out").exists()

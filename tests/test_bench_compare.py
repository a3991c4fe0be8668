"""``bench.compare`` runs each build it names: a harness that quietly ran the repository's
build for every tree made two sessions of A/B results noise (docs/performance.md)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from bench import compare as compare_module
from bench.compare import REPOSITORY, compare, main
from bench.filesystem import require_on_disk
from bench.http_load import WrkMissing, require_wrk
from sidecar import __version__


def _copy_with_version(tmp_path: Path, version: str) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(REPOSITORY / "sidecar", tree / "sidecar")
    init = tree / "sidecar" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{__version__}"', f'"{version}"'))
    return tree


def test_a_directory_without_the_package_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([str(tmp_path)]) == 2
    assert "no sidecar/__init__.py, not a checkout of Tollgate" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--seconds", "--rounds", "--concurrency"])
def test_a_count_below_one_is_a_usage_error(option: str, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exited:
        main([option, "0", str(REPOSITORY)])
    assert exited.value.code == 2
    assert "must be 1 or more, not 0" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_trails_on_tmpfs_are_refused_before_anything_starts(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Its c1 figures are the ones trusted between builds: on tmpfs they would be judged
    without a disk, as ``python -m bench`` refuses to judge them."""
    started: list[str] = []
    monkeypatch.setattr(compare_module.Server, "start", lambda server: started.append(server.name))
    trails = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        code = main(["--dir", str(trails), "--seconds", "1", "--rounds", "1", str(REPOSITORY)])
        leftovers = list(trails.iterdir())
    finally:
        shutil.rmtree(trails, ignore_errors=True)
    err = capsys.readouterr().err
    assert code == 2
    assert f"bench.compare: the audit trails would go to {trails}, on tmpfs" in err
    assert "--dir DIR" in err
    assert started == [] and leftovers == []


def _need_wrk() -> None:
    try:
        require_wrk()
    except WrkMissing:
        pytest.skip("wrk is not installed (apt-get install -y wrk); .ci/run installs it")


def test_a_build_that_cannot_start_is_a_clear_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _need_wrk()
    tree = _copy_with_version(tmp_path, "0.0.0+broken")
    (tree / "sidecar" / "cli.py").write_text('raise SystemExit("this build is broken")\n')
    assert main(["--seconds", "1", "--rounds", "1", str(REPOSITORY), str(tree)]) == 2
    err = capsys.readouterr().err
    assert "gate 2 exited early" in err and "this build is broken" in err
    assert f"gate 2 = {tree}" in err


def test_each_gate_runs_the_tree_it_names(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _need_wrk()
    tree = _copy_with_version(tmp_path, "0.0.0+compared")
    # From the repository root, where an import by PYTHONPATH would get the repository's build.
    monkeypatch.chdir(REPOSITORY)
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))
    work = tmp_path / "work"
    work.mkdir()
    text = compare([REPOSITORY, tree], concurrency=2, seconds=1, rounds=1, work=work)
    assert f"audit trails on {require_on_disk(work)};" in text.splitlines()[0]
    rows = {
        match[0]: match[1:]
        for match in re.findall(
            r"^\| (\d) \| (\S+) \| (\S+) \| ([\d.]+) \(.*?\) \| \d+ \(([\d.]+)x\) .*\| (\d+) \|$",
            text,
            re.M,
        )
    }
    assert rows["1"][:2] == (str(REPOSITORY), __version__)
    assert rows["2"][:2] == (str(tree), "0.0.0+compared")
    for _tree, _version, share, p50_ratio, errors in rows.values():
        assert float(share) > 0 and float(p50_ratio) > 0 and errors == "0"

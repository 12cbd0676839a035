"""`perception sim generate --shard K/N`: shards are disjoint parts of one dataset that merge by copying folders.

A tiny dataset (3 scenes x 2 frames, 256 columns, 80 m streets) keeps it fast: shard 1/2 renders scenes 0 and 2,
shard 2/2 scene 1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from perception_ws.cli import main
from perception_ws.errors import DatasetError
from perception_ws.io import open_dataset
from perception_ws.io.sim_manifest import read_manifest
from perception_ws.shard import Shard
from perception_ws.sim.dataset import GenerateConfig, generate_dataset
from perception_ws.sim.world.generator import SceneConfig

SMALL_SCENE = SceneConfig(half_length=40.0, y_extent=30.0)
CONFIG = GenerateConfig(scenes=3, frames=2, columns=256, seed=5, scene=SMALL_SCENE)
SHARD_MANIFESTS = ["manifest-shard-1-of-2.json", "manifest-shard-2-of-2.json"]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative name, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _frames(folder: Path) -> dict[str, bytes]:
    return {name: data for name, data in _files(folder).items() if name.startswith("frames/")}


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CONFIG rendered unsharded."""
    out = tmp_path_factory.mktemp("whole") / "data"
    generate_dataset(out, CONFIG, progress=False)
    return out


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """CONFIG rendered as shards 1/2 and 2/2 through the API (one worker, then two)."""
    root = tmp_path_factory.mktemp("small_shards")
    for k, workers in ((1, 2), (2, 1)):
        generate_dataset(root / f"shard{k}", CONFIG, workers=workers, progress=False, shard=Shard(k, 2))
    return [root / "shard1", root / "shard2"]


def _merge(folders: list[Path], into: Path) -> Path:
    for folder in folders:
        shutil.copytree(folder, into, dirs_exist_ok=True)  # "merge by copying folders", literally
    return into


def test_shards_copied_into_one_folder_are_the_unsharded_dataset_file_for_file(
    whole: Path, small_shards: list[Path], tmp_path: Path
) -> None:
    one, two = (_frames(f) for f in small_shards)
    assert sorted(one) == [f"frames/s{i:05d}_f{j:03d}.npz" for i in (0, 2) for j in range(2)]
    assert sorted(two) == [f"frames/s00001_f{j:03d}.npz" for j in range(2)]
    merged = _merge(small_shards, tmp_path / "merged")
    assert _frames(merged) == _frames(whole)  # the same bytes: no seed depends on the shard
    assert sorted(set(_files(merged)) - set(_frames(merged))) == SHARD_MANIFESTS
    # the shards' manifests read as the unsharded one, field for field
    assert read_manifest(merged) == json.loads((whole / "manifest.json").read_text())
    # each shard's manifest differs from it only in the fields of its own: shard, frames, planned_frames, complete
    unsharded = json.loads((whole / "manifest.json").read_text())
    for k, name in enumerate(SHARD_MANIFESTS, start=1):
        own = json.loads((merged / name).read_text())
        assert own.pop("shard") == {"index": k, "count": 2}
        assert own["complete"] is True
        assert own["planned_frames"] == len(own["frames"]) == (4 if k == 1 else 2)
        differ = {key for key in unsharded if own[key] != unsharded[key]}
        assert differ == {"frames", "planned_frames"}


def test_the_merged_folder_opens_with_the_frames_of_the_unsharded_dataset(
    whole: Path, small_shards: list[Path], tmp_path: Path
) -> None:
    merged, reference = open_dataset(_merge(small_shards, tmp_path / "merged")), open_dataset(whole)
    assert len(merged) == len(reference) == 6
    assert not merged.notes
    for i in range(6):
        a, b = merged[i], reference[i]
        assert a.name == b.name
        np.testing.assert_array_equal(a.xyz, b.xyz)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_one_shard_alone_opens_with_the_missing_frames_noted(small_shards: list[Path]) -> None:
    dataset = open_dataset(small_shards[1])
    assert [dataset[i].name for i in range(len(dataset))] == ["s00001_f000", "s00001_f001"]
    assert dataset.notes == ["2 of 6 planned frames are done (generation was interrupted?)"]


def test_cli_shards_merge_into_the_unsharded_cli_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same through `perception sim generate` (full-size streets, so one frame per scene)."""
    args = ["sim", "generate", "--scenes", "3", "--frames", "1", "--columns", "128", "--seed", "5", "--quiet"]
    for k in (1, 2):  # as two machines would, each into its own folder
        assert main([*args, "--out", str(tmp_path / f"shard{k}"), "--shard", f"{k}/2"]) == 0
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].endswith("shard2: shard 2/2: 1 of 1 frames (1 scenes x 1), manifest-shard-2-of-2.json")
    merged = _merge([tmp_path / "shard1", tmp_path / "shard2"], tmp_path / "merged")
    assert _frames(merged) == _frames(tmp_path / "whole")
    assert read_manifest(merged) == json.loads((tmp_path / "whole" / "manifest.json").read_text())


def test_a_shard_resumes_alone_and_leaves_other_shards_files_alone(small_shards: list[Path], tmp_path: Path) -> None:
    merged = _merge(small_shards, tmp_path / "merged")  # N jobs writing into one shared folder
    before = _files(merged)
    (merged / "frames" / "s00002_f001.npz").unlink()  # shard 1's frame, lost
    other_tmp = merged / "frames" / ".s00001_f000.npz.abcd1234.tmp"  # shard 2 still writing this one
    own_tmp = merged / "frames" / ".s00002_f001.npz.abcd1234.tmp"  # shard 1's own leftover
    other_tmp.write_bytes(b"half")
    own_tmp.write_bytes(b"half")
    manifest = generate_dataset(merged, CONFIG, progress=False, shard=Shard(1, 2))
    assert manifest["complete"]
    assert len(manifest["frames"]) == 4
    assert other_tmp.exists()
    assert not own_tmp.exists()
    other_tmp.unlink()
    assert _files(merged) == before  # the lost frame rendered again, byte for byte


def test_a_resumed_shard_with_other_settings_is_refused(small_shards: list[Path], tmp_path: Path) -> None:
    folder = _merge(small_shards[:1], tmp_path / "shard1")
    other = GenerateConfig(scenes=3, frames=2, columns=256, seed=6, scene=SMALL_SCENE)
    with pytest.raises(DatasetError, match=r"other settings .*seed"):
        generate_dataset(folder, other, progress=False, shard=Shard(1, 2))


def test_unsharded_runs_and_shards_of_another_n_do_not_share_a_folder(
    whole: Path, small_shards: list[Path], tmp_path: Path
) -> None:
    merged = _merge(small_shards, tmp_path / "merged")
    with pytest.raises(DatasetError, match=r"manifest-shard-1-of-2\.json, which is not of --shard 1/3"):
        generate_dataset(merged, CONFIG, progress=False, shard=Shard(1, 3))
    with pytest.raises(DatasetError, match=r"which is not of --shard 1/1"):
        generate_dataset(merged, CONFIG, progress=False)
    with pytest.raises(DatasetError, match=r"manifest\.json, which is not of --shard 2/2"):
        generate_dataset(_merge([whole], tmp_path / "whole"), CONFIG, progress=False, shard=Shard(2, 2))
    # a folder holding both layouts, or shards of two datasets, is refused when read
    shutil.copy(whole / "manifest.json", merged / "manifest.json")
    with pytest.raises(DatasetError, match=r"both manifest\.json and shard manifests"):
        open_dataset(merged)
    (merged / "manifest.json").unlink()
    second = json.loads((merged / SHARD_MANIFESTS[1]).read_text())
    second["config"]["seed"] = 6
    (merged / SHARD_MANIFESTS[1]).write_text(json.dumps(second))
    with pytest.raises(DatasetError, match=r"shards of different datasets .*config"):
        open_dataset(merged)


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1/0", "2", "a/b", "1/2/3", "-1/2"])
def test_a_bad_shard_is_one_line_and_exit_2(shard: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    assert main(["sim", "generate", "--out", str(out), "--scenes", "1", f"--shard={shard}", "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert "--shard" in err[0]
    assert not out.exists()  # refused before anything is written

"""scripts/gpu_pack.py's return trip: what a GPU run splits into parts comes back whole, or is
refused. A GPU is lent for minutes; a damaged or short transfer must not become a model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_pack.py"


@pytest.fixture
def gpu_pack(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_pack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "PART", 1000)  # several parts from a few kilobytes
    return module


def fake_run(root: Path, name: str, seed: int) -> None:
    for export in ("best", "last"):
        folder = root / name / export
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(bytes((seed * 7 + i) % 251 for i in range(2500)))
        (folder / "config.json").write_text(f'{{"n_layer": {seed}}}')
    (root / name / "log.jsonl").write_text('{"step": 0}\n')


def test_split_then_join_gives_back_every_run(gpu_pack, tmp_path):
    root, out, back = tmp_path / "gpu", tmp_path / "out", tmp_path / "back"
    fake_run(root, "w256", 1)
    fake_run(root, "v2", 2)
    out.mkdir()
    (out / "w256.log").write_text("done\n")
    gpu_pack.main(["split", str(out), "w256", "v2", "--root", str(root)])
    assert len(list(out.glob("back.tar.part*"))) > 2  # more parts than 10, if any, sort by number
    gpu_pack.main(["join", str(out), str(back)])
    for name in ("w256", "v2"):
        for export in ("best", "last"):
            for f in ("model.safetensors", "config.json"):
                assert (back / name / export / f).read_bytes() == (root / name / export / f).read_bytes()
        assert (back / name / "log.jsonl").is_file()
    assert (back / "w256.log").read_text() == "done\n"


def test_join_refuses_parts_that_do_not_make_the_tar(gpu_pack, tmp_path):
    root, out = tmp_path / "gpu", tmp_path / "out"
    fake_run(root, "w256", 3)
    out.mkdir()
    gpu_pack.main(["split", str(out), "w256", "--root", str(root)])
    last = max(out.glob("back.tar.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    last.unlink()  # a part that did not come back
    with pytest.raises(SystemExit, match="do not make the tar the run wrote"):
        gpu_pack.main(["join", str(out), str(tmp_path / "back")])
    assert not (tmp_path / "back").exists()
    with pytest.raises(SystemExit, match=r"holds no back\.tar\.part"):
        gpu_pack.main(["join", str(tmp_path / "empty"), str(tmp_path / "back")])


def test_a_run_is_named_init_lr_batch(gpu_pack):
    assert gpu_pack.parse_run("igc-rgb16-w256:6e-4:128") == {
        "init": "igc-rgb16-w256", "lr": 6e-4, "batch": 128, "name": "w256"}
    with pytest.raises(SystemExit, match="expected INIT:LR:BATCH"):
        gpu_pack.parse_run("igc-rgb16-w256:fast")

"""scripts/gpu_pack.py's return trip: what a GPU run splits into parts comes back whole, or is
refused. A GPU is lent for minutes; a damaged or short transfer must not become a model."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
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
        "init": "igc-rgb16-w256", "lr": 6e-4, "batch": 128, "teacher": "", "grow": 0,
        "name": "w256"}
    for bad in ("igc-rgb16-w256:fast", "igc-rgb16-v3:1e-4", "igc-rgb16-v3:1e-4:64:t:2:x",
                "igc-rgb16-v3:1e-4:64:t:-1", "igc-rgb16-v3:0:64", "igc-rgb16-v3:nan:64",
                "igc-rgb16-v3:inf:64", "x=igc-rgb16-v3:1e-4:0"):
        with pytest.raises(SystemExit, match=r"expected \[NAME=\]INIT:LR:BATCH"):
            gpu_pack.parse_run(bad)
    for bad in ("-x=igc-rgb16-v3:1e-4:64", "é=igc-rgb16-v3:1e-4:64", "runs/-x:1e-4:64"):
        with pytest.raises(SystemExit, match="needs a NAME= of letters, digits"):
            gpu_pack.parse_run(bad)


def test_a_folder_with_equals_signs_is_a_start_not_a_name(gpu_pack):
    run = gpu_pack.parse_run("runs/lr=3e-4/best:1e-4:64:runs/t=1/last")
    assert (run["init"], run["teacher"], run["name"]) == ("runs/lr=3e-4/best", "runs/t=1/last",
                                                          "best")
    run = gpu_pack.parse_run("a=runs/lr=3e-4/best:1e-4:64")
    assert (run["init"], run["name"]) == ("runs/lr=3e-4/best", "a")


def test_a_run_distils_and_grows_under_its_own_name(gpu_pack):
    run = gpu_pack.parse_run("v3kd=igc-rgb16-v3:2e-4:256:igc-rgb16-w256-v2:2")
    assert run == {"init": "igc-rgb16-v3", "lr": 2e-4, "batch": 256,
                   "teacher": "igc-rgb16-w256-v2", "grow": 2, "name": "v3kd"}
    script = gpu_pack.run_script([run, gpu_pack.parse_run("igc-rgb16-v3:3e-4:256")], "--data x", 7)
    lines = [ln for ln in script.splitlines() if ln.startswith("python -m igc train")]
    assert len(lines) == 2
    assert "--teacher igc-rgb16-w256-v2 --distill 0.8 --grow-layers 2" in lines[0]
    assert "--out /tmp/gpu/v3kd " in lines[0] and "/tmp/gpu/v3 " in lines[1]
    assert "--teacher" not in lines[1] and "--grow-layers" not in lines[1]


def test_run_sh_quotes_folders_with_spaces_and_quotes(gpu_pack, tmp_path):
    run = gpu_pack.parse_run('odd=my runs/it\'s best:1e-4:64:the "teacher" $HOME')
    script = gpu_pack.run_script([run], "--data x", 7)
    path = tmp_path / "run.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)  # parses as a whole
    line = next(ln for ln in script.splitlines() if ln.startswith("python -m igc train"))
    words = shlex.split(line.split(" > ")[0])
    assert words[words.index("--init-from") + 1] == "my runs/it's best"
    assert words[words.index("--teacher") + 1] == 'the "teacher" $HOME'

"""The Slurm launcher's pieces that need no cluster: the job script, exit codes, slots, bad [slurm] keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.pipeline.slots import Slot, plan_slots
from cockpit.pipeline.slurm import batch_script, exit_code
from cockpit.pipeline.spec import PresetError, SlurmSettings, load_preset
from trainer.contract import RunPaths

PRESET = """
name = "s"
[pipeline]
launcher = "slurm"
[slurm]
{slurm}
[[configs]]
name = "bce"
loss = "bce"
"""


def test_the_job_script_asks_for_requeue_and_the_warning_signal_and_execs_the_trainer(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "p1-bce")
    settings = SlurmSettings(partition="gpu", account="ml", gpus_per_run=1, cpus_per_run=8, mem="32G",
                             time="4:00:00", extra=["--qos=high"], setup="module load cuda/12.4")
    script = batch_script(paths, settings, "goemo-x-p1-bce", Slot("slurm0", "cuda", (), 8),
                          ["--config", "run.toml", "--out", str(paths.root), "--resume"], {"GOEMO_ATTEMPT": "2"},
                          "/opt/venv/bin/python")
    lines = script.splitlines()
    for option in ("--requeue", "--signal=B:TERM@90", "--partition=gpu", "--account=ml", "--gpus=1",
                   "--cpus-per-task=8", "--mem=32G", "--time=4:00:00", "--qos=high", f"--output={paths.stdout}",
                   f"--error={paths.stderr}", "--open-mode=append"):
        assert f"#SBATCH {option}" in lines, option
    assert "module load cuda/12.4" in lines and "export GOEMO_ATTEMPT=2" in lines
    last = lines[-1] if lines[-1] else lines[-2]
    # exec: the trainer is the batch step's process and gets SIGTERM itself; --resume is decided at run time,
    # so a requeued job resumes from the run folder's checkpoint.
    assert last.startswith("exec /opt/venv/bin/python -m trainer.cli --config run.toml") and last.endswith("$RESUME")
    assert "--resume " not in last and any(str(paths.events) in line and "RESUME=" in line for line in lines)


@pytest.mark.parametrize("field, code", [("0:0", 0), ("1:0", 1), ("143:0", 143), ("0:9", -9), ("", 1)])
def test_exit_codes_from_scontrol(field: str, code: int) -> None:
    assert exit_code({"ExitCode": field} if field else {}) == code


def test_slurm_slots_are_places_in_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(PRESET.format(slurm="max_concurrent_jobs = 3\ncpus_per_run = 4"))
    preset, _ = load_preset(str(path))
    assert plan_slots(preset, gpus=[]) == [Slot(f"slurm{i}", "cpu", (), 4) for i in range(3)]


def test_an_unknown_slurm_key_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(PRESET.format(slurm="gpus = 2"))
    with pytest.raises(PresetError, match="slurm.gpus"):
        load_preset(str(path))

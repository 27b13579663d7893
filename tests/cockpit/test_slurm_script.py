"""The Slurm launcher's pieces that need no cluster: the job script, exit codes, slots, bad [slurm] keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.pipeline.slots import Slot, plan_slots
from cockpit.pipeline.slurm import batch_script, exit_code
from cockpit.pipeline.presets import PresetError, SlurmSettings, load_preset
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


def test_a_multi_node_job_starts_one_launcher_per_node_with_srun(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "p1-bce")
    gpu = SlurmSettings(nodes=2, gpus_per_run=4, cpus_per_run=16)
    script = batch_script(paths, gpu, "j", Slot("slurm0", "cuda", (), 16), ["--out", str(paths.root)], {}, "python3",
                          accelerate_config="/cfg/ds.yaml")
    lines = script.splitlines()
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=1" in lines
    assert "#SBATCH --signal=TERM@90" in lines  # step tasks get it (no B: prefix with srun)
    assert any(line.startswith("export MAIN_NODE=$(scontrol show hostnames") for line in lines)
    run = next(line for line in lines if line.startswith("exec srun --kill-on-bad-exit=1 bash -c "))
    for part in ("accelerate.commands.launch", "--num_machines 2", "--machine_rank $SLURM_NODEID",
                 "--main_process_ip $MAIN_NODE", "--num_processes 8", "--config_file /cfg/ds.yaml", "$RESUME"):
        assert part in run, part
    cpu = batch_script(paths, SlurmSettings(nodes=2, processes_per_node=2), "j", Slot("slurm0", "cpu", (), 2),
                       ["--out", str(paths.root)], {}, "python3")
    run = next(line for line in cpu.splitlines() if line.startswith("exec srun"))
    for part in ("torch.distributed.run", "--nnodes 2", "--node_rank $SLURM_NODEID", "--master_addr $MAIN_NODE",
                 "--nproc_per_node 2"):
        assert part in run, part


def test_the_local_launcher_picks_accelerate_torchrun_or_one_process() -> None:
    from cockpit.pipeline.launcher import trainer_command

    args = ["--out", "r"]
    assert trainer_command(Slot("cpu0", "cpu", (), 2), args)[1:4] == ["-m", "trainer.cli", "--out"]
    two = trainer_command(Slot("cpu0", "cpu", (), 1, processes=2), args)
    assert two[1:3] == ["-m", "torch.distributed.run"] and two[two.index("--nproc_per_node") + 1] == "2"
    gpus = trainer_command(Slot("cuda:0,1", "cuda", (0, 1)), args)
    assert "--multi_gpu" in gpus and gpus[gpus.index("--num_processes") + 1] == "2"
    ds = trainer_command(Slot("cuda:0", "cuda", (0,)), args, accelerate_config="ds.yaml")
    assert ds[1:3] == ["-m", "accelerate.commands.launch"] and ds[ds.index("--config_file") + 1] == "ds.yaml"

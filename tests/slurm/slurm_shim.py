"""A stand-in for one Slurm command (scontrol, squeue, sbatch, scancel) in tests that need no cluster.

``slurm_shim.py NAME ARGS...`` logs ``NAME ARGS`` as one JSON line to $SLURM_SHIM_DIR/calls.jsonl and answers
from $SLURM_SHIM_DIR/NAME.json: a list of ``{"out", "err", "rc", "match"}`` answers taken in order (the
last one repeats); an answer with ``match`` applies only to calls whose argument line contains it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

name, args = sys.argv[1], sys.argv[2:]
folder = Path(os.environ["SLURM_SHIM_DIR"])
with open(folder / "calls.jsonl", "a", encoding="utf-8") as log:
    log.write(json.dumps([name, *args]) + "\n")
script = folder / f"{name}.json"
answers = json.loads(script.read_text()) if script.exists() else [{}]
line = " ".join(args)
index = next((i for i, a in enumerate(answers) if a.get("match", "") in line), None)
if index is None:
    sys.exit(0)
answer = answers[index]
if len([a for a in answers if a.get("match", "") in line]) > 1:
    answers.pop(index)  # used up: the next matching answer comes next time
    script.write_text(json.dumps(answers))
sys.stdout.write(answer.get("out", ""))
sys.stderr.write(answer.get("err", ""))
sys.exit(int(answer.get("rc", 0)))

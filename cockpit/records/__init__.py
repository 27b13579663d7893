"""The records layer: what events mean, decoded once, for every consumer (the view model, the supervisor's
results, headless, export). Stdlib only, below both the pipeline and the views; it imports nothing of the
cockpit's.

- `values`: how a number, an integer, a string or a threshold is read out of an event (the one leniency
  rule: what is not of the expected kind reads as missing, never as an error);
- `evals`: `EvalRecord`, an ``eval`` event decoded, and the rules about which evals are a run's own;
- `ranking`: the one ranking rule (the chosen score, then the other, missing last).

Issue 18 moves the other event types and consumers here one at a time; eval, the most-decoded type, first.
"""

from cockpit.records.evals import EvalRecord, decode_eval, eval_source, is_run_eval
from cockpit.records.ranking import best_eval, rank_key, rank_place
from cockpit.records.values import integer, number, scores, text, threshold

__all__ = ["EvalRecord", "best_eval", "decode_eval", "eval_source", "integer", "is_run_eval", "number", "rank_key",
           "rank_place", "scores", "text", "threshold"]

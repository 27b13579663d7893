"""One training run on accelerate: setup, train, evaluate, checkpoint, export, cleanup.

Everything the run has to say goes to ``<out>/events.jsonl`` (see trainer/events.py); model state goes to
``<out>/checkpoints/``. A resumed run continues with the same step numbers and the same data order, because the
order is a pure function of (seed, epoch)."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer import checkpoints
from trainer.batches import TrainBatches, pad_multiple, tokenize_rows
from trainer.contract import (CHECKPOINTS_DIR, EVENTS_FILE, EXPORT_DIR, LATEST, RUN_CONFIG_FILE, CheckpointStateError,
                              best_metric_name, find_latest, is_better, node_devices_file, selection_scores,
                              total_steps)
from trainer.contract import Event, F1_MACRO, TUNED_CV_FIELD
from trainer.durable import write_atomic
from trainer.data import eval_batches, pad_batch
from trainer.devices import DeviceReporter, node_rank
from trainer.diagnostics import learning_figures
from trainer.ensemble import Evaluator
from trainer.events import EventWriter
from trainer.export_files import save_probs, write_thresholds
from trainer.faults import FaultPlan
from trainer.health import GradHealth
from trainer.label_table import final_test_fields
from trainer.losses import build_loss
from trainer.metrics import (evaluate_probs, final_thresholds, threshold_key, tune_thresholds, tuned_cv_spread,
                             tuned_summary)
from trainer.optimization import build_optimizer
from trainer.paired import CheckpointRival
from trainer.plateau import Plateau, flat_everywhere
from trainer.precision import mixed_precision
from trainer.preflight import Prepared
from trainer.sources import training_data
from trainer.timing import eval_guess_s, expect_s, model_activity, startup_grace_s
from trainer.models import EmotionClassifier, build_classifier, compile_in_place, count_parameters, export_classifier

__all__ = ["TrainingRun"]


class TrainingRun:
    """setup → train → (export) → cleanup for one RunConfig, writing events as it goes."""

    def __init__(self, prepared: Prepared, out_dir: Path, resume: bool = False,
                 export_from: Path | None = None, config_text: str | None = None, trains: bool = True) -> None:
        self.p, self.cfg, self.out, self.resume = prepared, prepared.config, out_dir, resume
        # run.toml to write once it is safe: at the start of a fresh run, after the checkpoint loaded on resume.
        self.config_text = config_text
        self.ckpt_root = out_dir / CHECKPOINTS_DIR
        # Export only: weights come from another run's best checkpoint (the pipeline's "reuse" final).
        self.best_root = export_from / CHECKPOINTS_DIR if export_from else self.ckpt_root
        # False for an export or ensemble job: run_start then says 0 steps, so views do not show a bar that
        # never moves (0/173) for a run that only loads, scores and writes.
        self.trains = trains and export_from is None
        self.faults = FaultPlan.from_env()
        self.stop_signal: int | None = None
        self.t0 = time.time()
        self.events: EventWriter | None = None
        self.best: dict[str, Any] = {"metric": best_metric_name(self.cfg.primary_threshold, self.cfg.select_by),
                                     "value": None, "step": None}
        self.plateau, self.flat = Plateau(self.cfg.early_stop_patience, self.cfg.early_stop_min_delta), False
        self.rival = CheckpointRival()  # is the kept checkpoint better than the next best, outside the noise?
        self.devices: Any = None  # the device reporter thread, on the first process of each node
        self.node_events: EventWriter | None = None  # device events of a node other than the main one
        self.nonfinite_skipped = 0
        self.nonfinite_in_row = 0
        self.last_eval_step = -1
        self.last_save_step = -1
        self.eval_seconds = 0.0
        self.ckpt_seconds = 0.0

    # -- events -------------------------------------------------------------------------------
    def emit(self, type_: str, **fields: Any) -> None:
        if self.events is not None and self.accelerator.is_main_process:
            self.events.emit(type_, **fields)

    def alert(self, level: str, code: str, message: str) -> None:
        self.emit(Event.ALERT, level=level, code=code, message=message)

    def _write_run_config(self) -> None:
        # Every process may write it: write_atomic's renames make the last identical copy win.
        if self.config_text is not None:
            write_atomic(self.out / RUN_CONFIG_FILE, self.config_text)
        self.config_text = None

    # -- setup --------------------------------------------------------------------------------
    def setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import GradientAccumulationPlugin, set_seed

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.resume:
            self._write_run_config()  # a fresh run has nothing to protect; on resume it waits for the checkpoint
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
        if cfg.device == "cuda" and not use_cuda:
            raise ValueError("device 'cuda' requested but no CUDA device is available")
        if use_cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        # The accumulation counter is aligned by construction (each optimizer step is exactly
        # grad_accum micro-batches), so it must not try to sync with a dataloader it never sees.
        self.accelerator = Accelerator(
            cpu=not use_cuda,
            mixed_precision=mixed_precision(cfg, use_cuda),
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=cfg.grad_accum,
                                                                    sync_with_dataloader=False),
        )
        self.events = EventWriter(self.out / EVENTS_FILE) if self.accelerator.is_main_process else None
        # The first process of every node reports its node's devices: the main process into the run's
        # events, the first process of each other node into that node's own file beside them.
        if cfg.device_every_s > 0 and self.accelerator.is_local_main_process:
            emit: Any = self.emit
            node = node_rank()
            if self.events is None:
                self.node_events = EventWriter(self.out / node_devices_file(node))
                emit = self.node_events.emit
            self.devices = DeviceReporter(emit, cfg.device_every_s, self.accelerator.local_process_index,
                                          node=node).start()
        self.emit(Event.ACTIVITY, what="load", expect_s=startup_grace_s())
        set_seed(cfg.seed)
        self._setup_data()
        self._setup_model()

    def _setup_data(self) -> None:
        cfg = self.cfg
        data = training_data(self.p.sources, cfg)
        self.emit(Event.DATA, **data.event)
        rows = tokenize_rows(data, self.p.tokenizer, cfg.max_length)
        self.train_ids, self.train_labels, self.train_masks = rows.train_ids, rows.train_labels, rows.train_masks
        self.train_prior = self.train_labels.mean(axis=0)  # what a model stuck on the prior predicts for every row
        self.eval_sets, self.source_devs = rows.eval_sets, rows.source_devs
        weights = data.class_weights
        self.class_weights = torch.tensor(weights) if cfg.class_weights == "balanced" else None
        # Padded as _to_device pads them, so that a token budget counts the positions the model computes.
        self.batches = TrainBatches(rows.train_lengths, cfg.seed, cfg.batch_size, cfg.max_tokens_per_batch,
                                    pad_multiple(self.accelerator.device.type), self.accelerator.num_processes,
                                    cfg.grad_accum)
        self.steps_per_epoch = self.batches.steps_per_epoch
        self.total_steps = total_steps(cfg.max_steps, cfg.epochs, self.steps_per_epoch)

    def _setup_model(self) -> None:
        cfg = self.cfg
        # Covers a hub download too; the supervisor sizes GOEMO_STARTUP_GRACE_S from the preset.
        self.emit(Event.ACTIVITY, what=model_activity(self.p.source), expect_s=startup_grace_s())
        model = build_classifier(self.p.source, self.p.names, self.p.tokenizer, cfg.dropout, cfg.seed)
        if cfg.gradient_checkpointing:
            model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.compile:  # in place: checkpoints keep the plain module's keys (trainer.models.compile_in_place)
            compile_in_place(model)
        self.n_params = count_parameters(model)
        optimizer, scheduler = build_optimizer(model, cfg, self.total_steps,
                                               on_cuda=self.accelerator.device.type == "cuda")
        # The scheduler is not prepared: accelerate would step it once per process, while our
        # schedule is already counted in optimizer steps. It is still saved with the checkpoint.
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.scheduler = scheduler  # saved and restored by trainer.checkpoints, next to the optimizer
        cw = self.class_weights.to(self.accelerator.device) if self.class_weights is not None else None
        self.criterion = build_loss(cfg.loss, cfg.loss_params, cw)
        self.start_step = 0
        if self.resume:
            self._load_latest()
            self._write_run_config()
        self.emit(
            Event.RUN_START, run=cfg.run, config=cfg.model_dump(), model=cfg.model, n_params=self.n_params,
            device=str(self.accelerator.device), world_size=self.accelerator.num_processes, pid=os.getpid(),
            resumed_from_step=self.start_step if self.resume and self.start_step else None,
            precision=self.accelerator.mixed_precision, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps if self.trains else 0, torch_threads=torch.get_num_threads(),
            rows_per_batch=self.batches.rows_per_batch)  # a token budget's effective batch, as users see it

    def _load_latest(self) -> None:
        ckpt = find_latest(self.ckpt_root)
        if ckpt is None:
            self.alert("info", "resume", "no checkpoint found; starting from step 0")
            return
        state = checkpoints.validate_latest(ckpt, self.accelerator.process_index)
        if state["seed"] != self.cfg.seed or state["total_steps"] != self.total_steps:
            raise CheckpointStateError(
                f"{ckpt}: written by a different config (seed {state['seed']}, {state['total_steps']} steps; "
                f"this config: seed {self.cfg.seed}, {self.total_steps} steps)")
        if ckpt.name != LATEST:
            self.alert("warn", "checkpoint_fallback", f"{ckpt.name}: resuming from the previous checkpoint "
                                                      "(the newest one was cut short)")
        self.emit(Event.ACTIVITY, what="load", expect_s=max(60.0, 4 * float(state.get("save_seconds") or 15)))
        checkpoints.load_latest(self.accelerator, ckpt, self.model, self.optimizer, self.scheduler)
        self.start_step = int(state["step"])
        self.best = state["best"]
        self.plateau.restore(state.get("plateau"))
        self.nonfinite_skipped = int(state["nonfinite_skipped"])
        self.last_eval_step = int(state.get("last_eval_step", -1))
        self.eval_seconds = float(state.get("eval_seconds") or 0.0)
        self.ckpt_seconds = float(state.get("save_seconds") or 0.0)

    # -- batches ------------------------------------------------------------------------------
    def _to_device(self, ids: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, mask = pad_batch(ids, self.p.tokenizer.pad_token_id or 0, pad_multiple(self.accelerator.device.type))
        dev = self.accelerator.device
        return torch.from_numpy(input_ids).to(dev, non_blocking=True), torch.from_numpy(mask).to(dev, non_blocking=True)

    # -- training -----------------------------------------------------------------------------
    def train(self) -> tuple[str, str]:
        """Run optimizer steps until done or stopped; returns (status, reason)."""
        cfg = self.cfg
        health = GradHealth()
        step = self.start_step
        self.emit(Event.ACTIVITY, what="train", expect_s=300)
        self.model.train()
        while step < self.total_steps and not self.flat:
            epoch = step // self.steps_per_epoch
            plan = self.batches.steps(epoch, self.accelerator.process_index)  # this process's micro-batches
            for micro_batches in plan[step % self.steps_per_epoch:]:
                if step >= self.total_steps or self.flat:
                    break
                self.faults.before_step(step + 1)
                failed = self._train_step(step + 1, micro_batches, health)
                step += 1
                if failed:
                    self.save_latest(step)
                    return "failed", failed
                if cfg.eval_every_steps and step % cfg.eval_every_steps == 0:
                    self.evaluate_dev(step)
                if self._stop_requested():
                    self.save_latest(step)
                    return "stopped", self._stop_reason()
                if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0:
                    self.save_latest(step)
            if step % self.steps_per_epoch == 0 or step >= self.total_steps:
                if self.last_eval_step != step:
                    self.evaluate_dev(step)
                if self.last_save_step != step:  # checkpoint_every_steps may have saved this step already
                    self.save_latest(step)
        if self.last_eval_step != step:
            self.evaluate_dev(step)
        return "completed", self.plateau.reason(self.best["metric"]) if self.flat else f"{step} optimizer steps"

    def _stop_requested(self) -> bool:
        """Whether every rank stops at this step boundary. A SIGTERM may reach one rank only, or land between
        two ranks' checks: a flag all ranks reduce together (accelerate's set_trigger/check_trigger) makes
        them all stop at the same step, so none waits in the checkpoint's barrier while another starts the
        next step's all-reduce."""
        if self.stop_signal is not None:
            self.accelerator.set_trigger()
        if self.accelerator.num_processes == 1:
            return self.stop_signal is not None
        return self.accelerator.check_trigger()

    def _stop_reason(self) -> str:
        if self.stop_signal is None:
            return "a stop signal on another rank"
        return f"signal {signal.Signals(self.stop_signal).name}"

    def _train_step(self, step: int, micro_batches: list[np.ndarray], health: GradHealth) -> str | None:
        """One optimizer step over grad_accum micro-batches; returns a failure reason or None."""
        acc, cfg = self.accelerator, self.cfg
        t_start = time.perf_counter()
        losses, samples, tokens = [], 0, 0
        grad_norm, loss_value, finite = float("nan"), float("nan"), True
        for rows in micro_batches:
            input_ids, mask = self._to_device([self.train_ids[i] for i in rows])
            targets = torch.from_numpy(self.train_labels[rows]).to(acc.device)
            observed = None if self.train_masks is None else torch.from_numpy(self.train_masks[rows]).to(acc.device)
            with acc.accumulate(self.model):
                with acc.autocast():
                    logits = self.model(input_ids, mask)
                loss = self.criterion(logits.float(), targets, observed)
                if self.faults.nan_at(step):
                    loss = loss * float("nan")
                acc.backward(loss)
                losses.append(loss.detach())
                samples += len(rows)
                tokens += int(mask.sum())
                if acc.sync_gradients:
                    max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
                    # Clips after unscaling under fp16; the returned norm is the pre-clip total.
                    grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), max_norm))
                    # .item() is a device sync, paid once per optimizer step for the non-finite guard.
                    mean_loss = torch.stack(losses).mean()
                    if acc.num_processes > 1:  # the step's loss over every rank's rows, as one process reports it
                        mean_loss = acc.reduce(mean_loss, reduction="mean")
                    loss_value = float(mean_loss.item())
                    finite = math.isfinite(loss_value) and (math.isfinite(grad_norm) or acc.mixed_precision == "fp16")
                    if finite or acc.mixed_precision == "fp16":
                        # Under fp16 the grad scaler itself skips steps with inf/nan gradients.
                        self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
        slow = self.faults.slow_factor(step)
        if slow > 1:
            time.sleep((slow - 1) * (time.perf_counter() - t_start))
        step_time = time.perf_counter() - t_start
        if finite:
            self.nonfinite_in_row = 0
            for code, message in health.observe(grad_norm):
                self.alert("warn", code, f"step {step}: {message}")
        else:
            self.nonfinite_skipped += 1
            self.nonfinite_in_row += 1
            self.alert("warn", "nonfinite", f"step {step}: non-finite loss or gradient "
                                            f"(loss={loss_value}, grad_norm={grad_norm}); optimizer step skipped")
        self.emit(Event.STEP, step=step, epoch=round(step / self.steps_per_epoch, 4), loss=loss_value,
                  lr=self.scheduler.get_last_lr()[0], grad_norm=grad_norm,
                  samples_per_s=samples * acc.num_processes / step_time,
                  tokens_per_s=tokens * acc.num_processes / step_time, step_time_s=step_time,
                  nonfinite_skipped=self.nonfinite_skipped)
        if self.nonfinite_in_row >= cfg.max_nonfinite_in_row:
            reason = f"{self.nonfinite_in_row} non-finite steps in a row (limit {cfg.max_nonfinite_in_row})"
            self.alert("error", "nonfinite", reason)
            return reason
        return None

    # -- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, split: str, model: torch.nn.Module | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """Sigmoid probabilities [n, 28] in split order, the labels, and the mean loss."""
        ids, labels, masks = self.eval_sets[split]
        model = model or self.accelerator.unwrap_model(self.model)
        was_training = model.training
        model.eval()
        lengths = np.array([len(t) for t in ids])
        probs = np.zeros(labels.shape, dtype=np.float32)
        loss_sum = 0.0
        for rows in eval_batches(lengths, self.cfg.eval_batch_size):
            input_ids, mask = self._to_device([ids[i] for i in rows])
            with self.accelerator.autocast():
                logits = model(input_ids, mask).float()
            targets = torch.from_numpy(labels[rows]).to(logits.device)
            observed = None if masks is None else torch.from_numpy(masks[rows]).to(logits.device)
            loss_sum += float(self.criterion(logits, targets, observed)) * len(rows)
            probs[rows] = torch.sigmoid(logits).cpu().numpy()
        if was_training:
            model.train()
        return probs, labels, loss_sum / len(labels)

    def _announce(self, what: str, last_seconds: float, guess_s: float) -> None:
        # The watchdog allows expect_s before it calls this run stalled.
        self.emit(Event.ACTIVITY, what=what, expect_s=expect_s(last_seconds, guess_s))

    def announce_eval(self, rows: int) -> None:
        """Tell the watchdog an evaluation of `rows` rows (dev and test of an export) starts now."""
        self._announce("eval", self.eval_seconds * rows / max(1, len(self.eval_sets["dev"][0])), eval_guess_s(rows))

    def evaluate_dev(self, step: int) -> dict[str, Any]:
        self._announce("eval", self.eval_seconds, eval_guess_s(len(self.eval_sets["dev"][0])))
        t = time.time()
        metrics: dict[str, Any] = {}
        error: BaseException | None = None
        if self.accelerator.is_main_process:
            try:
                metrics = self._evaluate_dev_main(step)
            except Exception as exc:  # noqa: BLE001 - re-raised on every process below
                error = exc
        # Also the barrier; a failure on the main process must not leave the others waiting at it.
        checkpoints.raise_if_any_failed(self.accelerator, error)
        self.accelerator.wait_for_everyone()
        self.flat = flat_everywhere(self.accelerator, self.plateau)  # early_stop_patience: the run ends as completed
        self.eval_seconds = time.time() - t
        self.last_eval_step = step
        self.emit(Event.ACTIVITY, what="train", expect_s=120)
        return metrics

    def evaluator(self) -> Evaluator:
        """What an ensemble needs of this set-up run (trainer.ensemble): the bare model, scoring and events."""
        return Evaluator(self.cfg, self.p.names, self.accelerator.unwrap_model(self.model), self.p.tokenizer,
                         self.out / EXPORT_DIR, len(self.eval_sets["dev"][0]) + len(self.eval_sets["test"][0]),
                         self.predict, self.announce_eval, self.emit_final_evals, self.emit)

    def _evaluate_dev_main(self, step: int) -> dict[str, Any]:
        probs, labels, loss = self.predict("dev")
        metrics = evaluate_probs(probs, labels, self.cfg.thresholds, self.p.names, self.cfg.primary_threshold)
        # Per-label thresholds tuned on dev and scored on dev: optimistic, shown as "tuned" for ranking
        # context only; the final phase tunes on dev and reports the held-out test split.
        tuned = tuned_summary(probs, labels, tune_thresholds(probs, labels, default=self.cfg.primary_threshold))
        # Cross-fitted on stratified halves of dev (5 splits, their mean and SD): a tuned score that does not
        # reward thresholds fitted to dev's own noise; select_by = "tuned_cv" picks the best checkpoint by it.
        cross_fitted, cv_sd = tuned_cv_spread(probs, labels, self.cfg.evaluation_seed, self.cfg.primary_threshold)
        # Is it learning at all (trainer/diagnostics.py)? The supervisor's not_learning rule reads these.
        learning = learning_figures(probs, labels, self.train_prior, self.cfg.primary_threshold)
        self.emit(Event.EVAL, step=step, epoch=round(step / self.steps_per_epoch, 4), split="dev", loss=loss,
                  tuned=tuned, tuned_cv=cross_fitted, tuned_cv_sd=cv_sd, learning=learning, **metrics)
        self._evaluate_sources(step)
        value, tie_break = selection_scores(self.cfg.select_by, metrics[F1_MACRO][threshold_key(
            self.cfg.primary_threshold)], cross_fitted)
        self.plateau.observe(step, value)
        self.rival.observe(step, value, probs, labels, is_better(value, tie_break, self.best))
        if is_better(value, tie_break, self.best):
            best = {"metric": self.best["metric"], "value": value, "step": step, "tie_break": tie_break}
            # get_state_dict is no collective for single-device and DDP models, the ones this trainer runs.
            checkpoints.save_best(self.accelerator.get_state_dict(self.model), self.ckpt_root, dict(best),
                                  (probs, labels))  # the dev probabilities too: a paired comparison needs them
            self.best = best  # only once best/ holds these weights
        return metrics

    def _evaluate_sources(self, step: int) -> None:
        """Each extra source on its own dev split, macro-F1 over the labels it observes: an eval event
        with ``source`` set, for context only (selection stays on GoEmotions dev)."""
        for name, observed in self.source_devs.items():
            probs, labels, loss = self.predict(name)
            probs, labels = probs[:, observed], labels[:, observed]
            names = [self.p.names[i] for i in observed]
            metrics = evaluate_probs(probs, labels, self.cfg.thresholds, names, self.cfg.primary_threshold)
            tuned = tuned_summary(probs, labels, tune_thresholds(probs, labels, default=self.cfg.primary_threshold))
            self.emit(Event.EVAL, step=step, epoch=round(step / self.steps_per_epoch, 4), split="dev", source=name,
                      observed_labels=names, loss=loss, tuned=tuned, **metrics)

    def save_latest(self, step: int) -> None:
        self._announce("checkpoint", self.ckpt_seconds, 60)
        t = time.time()
        state = {
            "step": step, "epoch": step / self.steps_per_epoch, "seed": self.cfg.seed,
            "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
            "data_order": {"seed": self.cfg.seed, "epoch": step // self.steps_per_epoch,
                           "batch_in_epoch": step % self.steps_per_epoch},
            "best": self.best, "nonfinite_skipped": self.nonfinite_skipped, "plateau": self.plateau.state(),
            "last_eval_step": self.last_eval_step, "save_seconds": self.ckpt_seconds,
            "eval_seconds": self.eval_seconds, "config": self.cfg.model_dump(),
        }
        path = checkpoints.save_latest(self.accelerator, self.ckpt_root, state, self.model, self.optimizer,
                                       self.scheduler, fault=self.faults.checkpoint_fault(step))
        self.ckpt_seconds, self.last_save_step = time.time() - t, step
        self.emit(Event.CHECKPOINT, step=step, path=str(path.relative_to(self.out)), seconds=round(self.ckpt_seconds, 3))

    # -- export -------------------------------------------------------------------------------
    def emit_final_evals(self, step: int, epoch: float, dev: tuple[np.ndarray, np.ndarray, float | None],
                         test: tuple[np.ndarray, np.ndarray, float | None], thresholds: np.ndarray,
                         **fields: Any) -> None:
        """The export's final dev and test evals: (probs, labels, loss) each, at the config's and the dev-tuned
        ``thresholds``; dev also gets tuned_cv, test the per-label table (trainer/label_table.py)."""
        for split, (probs, labels, loss) in (("dev", dev), ("test", test)):
            metrics = evaluate_probs(probs, labels, self.cfg.thresholds, self.p.names, self.cfg.primary_threshold)
            extra = final_test_fields(probs, labels, thresholds, self.p.names) if split == "test" else {
                TUNED_CV_FIELD: tuned_cv_spread(probs, labels, self.cfg.evaluation_seed, self.cfg.primary_threshold)[0]}
            self.emit(Event.EVAL, step=step, epoch=epoch, split=split, loss=loss, final=True,
                      tuned=tuned_summary(probs, labels, thresholds), **fields, **extra, **metrics)

    def export(self, step: int) -> None:
        """Best weights → dev/test probabilities, per-label thresholds tuned on dev, one test evaluation."""
        if not self.accelerator.is_main_process:
            return
        self.announce_eval(len(self.eval_sets["dev"][0]) + len(self.eval_sets["test"][0]))
        model: EmotionClassifier = self.accelerator.unwrap_model(self.model)
        loaded = checkpoints.load_best(self.best_root)
        exporting_another_run = self.best_root != self.ckpt_root
        if loaded is None and exporting_another_run:
            raise CheckpointStateError(f"{self.best_root.parent}: no best checkpoint to export")
        best = None
        if loaded is not None:
            best, meta = loaded
            model.load_state_dict(best)
            if exporting_another_run:
                self.best = meta
        export_dir = self.out / EXPORT_DIR
        dev_probs, dev_labels, dev_loss = self.predict("dev", model)
        test_probs, test_labels, test_loss = self.predict("test", model)
        thresholds = final_thresholds(dev_probs, dev_labels, self.cfg.primary_threshold, self.cfg.threshold_bagging)
        at = self.best["step"] if best is not None else step
        self.emit_final_evals(at, round(at / self.steps_per_epoch, 4), (dev_probs, dev_labels, dev_loss),
                              (test_probs, test_labels, test_loss), thresholds)
        export_classifier(model, self.p.tokenizer, export_dir)
        save_probs(export_dir, dev_probs, test_probs, dev_labels, test_labels)
        write_thresholds(export_dir, self.p.names, thresholds, self.cfg.primary_threshold,
                         max_length=self.cfg.max_length, best_step=at)
        self.emit(Event.CHECKPOINT, step=at, path=EXPORT_DIR, kind="export")

    def finish(self, status: str, reason: str) -> None:
        """run_end, then close the events file; a write that fails here (disk full) cannot be reported
        anywhere but stderr, so it is swallowed."""
        if self.devices is not None:
            self.devices.stop()
        try:
            self.emit(Event.RUN_END, status=status, reason=reason, wall_s=round(time.time() - self.t0, 3),
                      best=self.best, plateau_since=self.plateau.best_step if self.flat else None,
                      best_margin=self.rival.margin(self.cfg.primary_threshold))
        except (OSError, ValueError):
            pass
        for writer in (self.events, self.node_events):
            if writer is not None:
                try:
                    writer.close()
                except OSError:
                    pass

    def fail(self, code: str, message: str, reason: str) -> None:
        """An error alert and run_end ``failed``, each written if the events file still takes writes."""
        try:
            self.alert("error", code, message)
        except (OSError, ValueError):
            pass
        self.finish("failed", reason)

"""TensorBoard through tensorboardX (no torch): one log folder per run, ``<pipeline>/tb/<run-id>``.

``tensorboard --logdir runs/<id>/tb`` shows the whole pipeline, one run per training run. A continued run
(a restart, a resumed supervisor, a replay) adds an event file to the same folder; steps that go back
make TensorBoard drop the older points from that step on, so the curve shows the attempt that counted.

tensorboardX's writer module runs ``try: import torch`` at import (for its tensor type checks). The cockpit
never loads torch (seconds and hundreds of MB in the supervisor), so tensorboardX is imported with torch
hidden; it then checks numpy arrays only, and this adapter logs plain floats and strings.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from cockpit.outlets.trackers.base import REPLAY_TAG, TrackerRun, markdown_table
from cockpit.outlets.trackers.events_to_calls import Params, Resume, Scalar, Summary, Table, Text


_import_lock = threading.Lock()


def import_tensorboardx() -> Any:
    """``tensorboardX``, imported without loading torch (unless something already had)."""
    with _import_lock:
        if "tensorboardX" in sys.modules or "torch" in sys.modules:
            import tensorboardX
            return tensorboardX
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError meanwhile
        try:
            import tensorboardX
            return tensorboardX
        finally:
            if sys.modules.get("torch", 0) is None:
                del sys.modules["torch"]


class TensorBoardRun(TrackerRun):
    """Scalars and texts are written as summary protos with the tags as given: tensorboardX's helpers would
    rewrite ``dev/f1_macro@0.2`` to ``dev/f1_macro_0.2`` and suffix texts with ``/text_summary``."""

    tracker = "tensorboard"

    @classmethod
    def import_library(cls) -> None:
        import_tensorboardx()

    def open(self, *, continue_existing: bool, wall_time: float | None) -> None:
        SummaryWriter = import_tensorboardx().SummaryWriter
        from tensorboardX.proto import event_pb2, summary_pb2
        from tensorboardX.proto.plugin_text_pb2 import TextPluginData
        from tensorboardX.proto.tensor_pb2 import TensorProto
        from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto

        self._pb = event_pb2, summary_pb2, TensorProto, TensorShapeProto
        self._text_metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="text", content=TextPluginData(version=0).SerializeToString()))
        folder = self.store / self.run
        folder.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(logdir=str(folder), flush_secs=10)
        self._hparams_written = False
        if not continue_existing:  # a replay: voids what an earlier export or live forwarding wrote here
            self._session_start(0, wall_time)
        if self.replayed_at and not continue_existing:
            self._text(REPLAY_TAG, self.replayed_at, 0, wall_time)

    def _session_start(self, step: int, wall_time: float | None) -> None:
        """TensorBoard drops every point it has read at this step or later when it meets a session START."""
        event_pb2 = self._pb[0]
        event = event_pb2.Event(session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
        self.writer.file_writer.add_event(event, step, wall_time)

    def params(self, call: Params) -> None:
        if call.group == "config" and not self._hparams_written:
            self._write_hparams(call)
        body = "\n".join(f"- `{k}`: {v}" for k, v in sorted(call.values.items()))
        self._text(call.group, body, 0, None)

    def _write_hparams(self, call: Params) -> None:
        """The run config in TensorBoard's HParams view, with the dev and test macro-F1 as its metrics."""
        from tensorboardX.summary import hparams

        thresholds = call.nested.get("thresholds")
        if not isinstance(thresholds, list) or not thresholds:
            thresholds = [call.nested.get("primary_threshold", 0.2)]
        metrics = {f"{split}/f1_macro@{t:g}": None for split in ("dev", "test") for t in thresholds
                   if isinstance(t, (int, float))}
        for summary in hparams(call.values, metrics):
            self.writer.file_writer.add_summary(summary)
        self._hparams_written = True

    def scalar(self, call: Scalar) -> None:
        summary_pb2 = self._pb[1]
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=call.tag, simple_value=call.value)])
        self.writer.file_writer.add_summary(summary, call.step, call.wall_time)

    def _text(self, tag: str, text: str, step: int, wall_time: float | None) -> None:
        _, summary_pb2, TensorProto, TensorShapeProto = self._pb
        tensor = TensorProto(dtype="DT_STRING", string_val=[text.encode("utf-8")],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=self._text_metadata,
                                                                       tensor=tensor)])
        self.writer.file_writer.add_summary(summary, step, wall_time)

    def text(self, call: Text) -> None:
        self._text(call.tag, call.text, call.step, call.wall_time)

    def table(self, call: Table) -> None:
        self._text(call.tag, markdown_table(call.columns, call.rows), call.step, None)

    def summary(self, call: Summary) -> None:
        self._text("summary", markdown_table(("key", "value"), tuple(call.values.items())), 0, None)

    def resume(self, call: Resume) -> None:
        self._session_start(call.step + 1, call.wall_time)  # the checkpoint's own step stays

    def flush(self) -> None:
        self.writer.flush()

    def finish(self, status: str, wall_time: float | None) -> None:
        self.writer.close()

"""MLflow through ``MlflowClient`` with explicit run ids (thread-safe, no global active run).

The store is ``$MLFLOW_TRACKING_URI`` when set, else a SQLite database in the pipeline folder
(``mlruns/mlflow.db``, artifacts in ``mlruns/artifacts``): MLflow 3 refuses new file stores unless
``MLFLOW_ALLOW_FILE_STORE`` is set, and SQLite is its recommended local backend
(``mlflow ui --backend-store-uri sqlite:///runs/<id>/mlruns/mlflow.db``). One experiment per pipeline id,
one run per training run, named ``<pipeline-id>/<run-id>``. MLflow names allow no ``@``, so
``dev/f1_macro@0.2`` is logged as ``dev/f1_macro_at_0.2``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from itertools import zip_longest
from typing import Any

from cockpit.outlets.trackers.base import REPLAY_TAG, TrackerRun
from cockpit.outlets.trackers.events_to_calls import Params, Scalar, Summary, Table, Text

DB_FILE = "mlflow.db"
ARTIFACTS = "artifacts"
NOTES_FILE = "notes.txt"
STATUS = {"completed": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}
MAX_PARAM_VALUE = 6000  # MLflow's limit since 2.x
MAX_TAG_VALUE = 5000
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 800, 100, 100  # log_batch takes 1000 entities, 100 params, 100 tags

_open_lock = threading.Lock()  # experiment and run lookup-or-create must not race between runs
_clients: dict[str, Any] = {}


def metric_key(tag: str) -> str:
    """A tag as an MLflow metric or tag name: ``@`` -> ``_at_``, other forbidden characters -> ``_``."""
    return re.sub(r"[^/\w.\- ]", "_", tag.replace("@", "_at_"))


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _millis(wall_time: float | None) -> int:
    return int((wall_time if wall_time is not None else time.time()) * 1000)


class MlflowRun(TrackerRun):
    tracker = "mlflow"

    @classmethod
    def import_library(cls) -> None:
        import mlflow.tracking  # noqa: F401

    def open(self, *, continue_existing: bool, wall_time: float | None) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        artifact_location = None
        if not uri:
            self.store.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(self.store / DB_FILE).resolve()}"
            artifact_location = (self.store / ARTIFACTS).resolve().as_uri()
        self._metrics: list[Any] = []
        self._params: list[Any] = []
        self._tags: dict[str, str] = {}
        self._notes: list[str] = []
        self._notes_written = 0
        with _open_lock:
            client = _clients.get(uri)
            if client is None:
                client = _clients[uri] = MlflowClient(tracking_uri=uri)
            self.client = client
            experiment = client.get_experiment_by_name(self.pipeline_id)
            if experiment is None:
                experiment_id = client.create_experiment(self.pipeline_id, artifact_location=artifact_location)
            else:
                experiment_id = experiment.experiment_id
                if experiment.lifecycle_stage == "deleted":
                    client.restore_experiment(experiment_id)
            found = []
            if continue_existing:
                query = f"tags.`mlflow.runName` = '{self.name}'"
                if self.replayed_at:  # a restart within a replay continues this export's run, not an older one
                    query += f" and tags.`{REPLAY_TAG}` = '{self.replayed_at}'"
                found = client.search_runs([experiment_id], filter_string=query, max_results=1,
                                           order_by=["attributes.start_time DESC"])
            if found:
                self.run_id = found[0].info.run_id
                self._logged = dict(found[0].data.params)
                client.update_run(self.run_id, status="RUNNING")
            else:
                tags = {"goemo.pipeline": self.pipeline_id, "goemo.run": self.run}
                if self.replayed_at:
                    tags[REPLAY_TAG] = self.replayed_at
                run = client.create_run(experiment_id, start_time=_millis(wall_time), run_name=self.name, tags=tags)
                self.run_id = run.info.run_id
                self._logged = {}

    def params(self, call: Params) -> None:
        from mlflow.entities import Param

        for key, value in call.values.items():
            text = str(value)[:MAX_PARAM_VALUE]
            if key not in self._logged:  # MLflow forbids changing a logged value (a resumed run logs it again)
                self._logged[key] = text
                self._params.append(Param(key, text))

    def scalar(self, call: Scalar) -> None:
        from mlflow.entities import Metric

        self._metrics.append(Metric(metric_key(call.tag), call.value, _millis(call.wall_time), call.step))

    def text(self, call: Text) -> None:
        self._tags[metric_key(call.tag)] = call.text[:MAX_TAG_VALUE]  # the latest note per tag, in the run's tags
        self._notes.append(f"step {call.step}\t{call.tag}\t{call.text}")  # every note, in notes.txt

    def table(self, call: Table) -> None:
        # pandas' "split" layout, the one MLflow's log_table writes and its artifact viewer shows as a table
        self.client.log_dict(self.run_id, {"columns": list(call.columns), "data": [list(r) for r in call.rows]},
                             f"{metric_key(call.tag)}.json")

    def summary(self, call: Summary) -> None:
        from mlflow.entities import Metric

        for key, value in call.values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._metrics.append(Metric(metric_key(f"summary/{key}"), float(value), _millis(None), 0))
            else:
                self._tags[metric_key(f"goemo.{key}")] = str(value)[:MAX_TAG_VALUE]

    def flush(self) -> None:
        from mlflow.entities import RunTag

        metrics, params, tags = self._metrics, self._params, [RunTag(k, v) for k, v in self._tags.items()]
        self._metrics, self._params, self._tags = [], [], {}
        for m, p, t in zip_longest(_chunks(metrics, BATCH_METRICS), _chunks(params, BATCH_PARAMS),
                                   _chunks(tags, BATCH_TAGS), fillvalue=[]):
            self.client.log_batch(self.run_id, metrics=m, params=p, tags=t)
        if len(self._notes) > self._notes_written:
            self.client.log_text(self.run_id, "\n".join(self._notes) + "\n", NOTES_FILE)
            self._notes_written = len(self._notes)

    def finish(self, status: str, wall_time: float | None) -> None:
        self.client.set_terminated(self.run_id, status=STATUS.get(status, "KILLED"), end_time=_millis(wall_time))

"""Reusable cockpit widgets; each takes immutable snapshots from `cockpit.state` and carries its own DEFAULT_CSS."""

from cockpit.widgets.alerts import AlertsLog, StallBanner
from cockpit.widgets.charts import LineChart
from cockpit.widgets.gpu_panel import GpuPanel
from cockpit.widgets.grad_health import GradHealthPanel
from cockpit.widgets.label_heatmap import LabelHeatmap
from cockpit.widgets.tables import (FinalLabelsTable, LeaderboardTable, OversamplingTable, PerClassTable, RunsTable,
                                    SourcesTable)

__all__ = [
    "AlertsLog", "FinalLabelsTable", "GpuPanel", "GradHealthPanel", "LabelHeatmap", "LeaderboardTable", "LineChart", "OversamplingTable",
    "PerClassTable", "RunsTable", "SourcesTable", "StallBanner",
]

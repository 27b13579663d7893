"""The pipeline: one supervisor per pipeline folder (phases, scheduling, restarts, watchdog, control,
results and the report). It launches goemo-train processes and reads their files; it never imports torch
or Textual."""

"""goemo-cockpit: the pipeline supervisor and its views (Textual app and headless console), built from the files a pipeline folder holds."""

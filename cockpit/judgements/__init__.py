"""Judgements read from records: is a run learning at all (`learning`). Stdlib only, above the records layer
and below the supervisor and the views, which both ask the same questions of the same records."""

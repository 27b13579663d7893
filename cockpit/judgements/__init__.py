"""Judgements read from records and run folders: is a run learning at all (`learning`), is its GPU waiting
(`devices`), is a difference between two runs real (`paired`). Above the records layer and below the
supervisor and the views, which both ask the same questions of the same files. `learning` and `devices` are
stdlib only; `paired` uses numpy (the cockpit never imports torch)."""

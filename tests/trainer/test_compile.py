"""``compile = true``: the model is compiled in place, so its checkpoints keep the plain module's keys and load
into an eager model. Dynamo's "eager" backend traces as inductor does but generates no code: a whole goemo-train
run with inductor took 80 s on this 2-core machine (mostly compiling), over what a unit test may cost, so the
trainer's own compiled run is left to the GPU day (bench/gpu_check.py --compile)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trainer.model_source import resolve_model  # noqa: E402
from trainer.models import build_classifier, compile_in_place, load_tokenizer  # noqa: E402

LABELS = [f"label{i}" for i in range(28)]


def _tiny():
    source = resolve_model("tiny-deberta")
    tokenizer = load_tokenizer(source)
    return build_classifier(source, LABELS, tokenizer, dropout=0.1, seed=0), len(tokenizer)


def test_a_compiled_model_trains_and_its_state_dict_loads_into_an_eager_one():
    model, vocab = _tiny()
    plain_keys = list(model.state_dict())
    compile_in_place(model, backend="eager")
    assert model._compiled_call_impl is not None  # __call__ now goes through torch.compile
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for width in (7, 12, 9):  # widths change every step, as token batches' do (dynamic=True)
        ids = torch.randint(5, vocab, (4, width), generator=generator)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(ids, torch.ones_like(ids)), torch.zeros(4, len(LABELS)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    state = model.state_dict()
    assert list(state) == plain_keys and not any("_orig_mod" in k for k in state)
    eager, _ = _tiny()
    eager.load_state_dict(state)  # strict: the same keys, no prefix
    model.eval(), eager.eval()
    ids = torch.randint(5, vocab, (3, 10), generator=generator)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, torch.ones_like(ids)), eager(ids, torch.ones_like(ids)))
    # What compile_in_place avoids: a torch.compile wrapper prefixes every key.
    assert all(k.startswith("_orig_mod.") for k in torch.compile(eager, backend="eager").state_dict())

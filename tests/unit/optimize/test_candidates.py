"""The candidate forms: pruning really zeroes its share, the student is smaller, quantized and exported forms
agree with fp32 within the stated tolerances, and timing leaves torch's thread setting as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipelines.optimize.candidates import build_candidates, export_onnx, int8_layers, quantize_int8, quantize_onnx_int8
from pipelines.optimize.distillation import distill, student_architecture
from pipelines.optimize.forms import OnnxCandidate, TorchCandidate
from pipelines.optimize.measure import AGREEMENT_TOLERANCE, latency, latency_key, score
from pipelines.optimize.pruning import prune_and_finetune, zero_fraction
from pipelines.training.metrics import classification_metrics
from pipelines.training.model import count_parameters


def test_pruning_zeroes_the_share_and_fine_tuning_keeps_the_zeros(trained) -> None:
    amount = 0.6
    pruned = prune_and_finetune(
        trained.teacher, amount, 1, trained.data["train"], trained.data["validation"], trained.spec.model, seed=1
    )
    assert zero_fraction(trained.teacher) < 0.01  # the teacher is untouched (pruning works on a copy)
    assert zero_fraction(pruned) == pytest.approx(amount, abs=0.002)  # global: over all Linear weights at once
    # permanent: plain weights, no mask buffers or pre-hooks left for serving
    names = set(pruned.state_dict())
    assert not any(n.endswith(("_orig", "_mask")) for n in names)
    assert all(not m._forward_pre_hooks for m in pruned.modules())
    # fine-tuning moved the surviving weights (the mask held, the rest learnt)
    first = pruned.mlp[0].weight
    original = trained.teacher.mlp[0].weight
    kept = first != 0
    assert not torch.equal(first[kept], original[kept])


def test_pruning_without_fine_tuning_only_zeroes(trained) -> None:
    pruned = prune_and_finetune(
        trained.teacher, 0.5, 0, trained.data["train"], trained.data["validation"], trained.spec.model, seed=1
    )
    for mine, theirs in zip(pruned.modules(), trained.teacher.modules(), strict=True):
        if isinstance(mine, nn.Linear):
            kept = mine.weight != 0
            assert torch.equal(mine.weight[kept], theirs.weight[kept])


def test_the_student_is_smaller_learns_and_is_deterministic(trained) -> None:
    arch = student_architecture(trained.architecture, 0.25)
    assert arch["hidden_dims"] == [32, 16] and trained.architecture["hidden_dims"] == [128, 64]
    args = (trained.teacher, arch, trained.data["train"], trained.data["validation"], trained.spec.model, 10)
    student = distill(*args, seed=3)
    assert count_parameters(student) < count_parameters(trained.teacher) / 3
    test = trained.data["test"]
    labels = test.labels.numpy()
    teacher_auc = classification_metrics(labels, score_of(trained.teacher, test))["auc"]
    student_auc = classification_metrics(labels, score_of(student, test))["auc"]
    assert student_auc > teacher_auc - 0.03  # close to the teacher on held-out rows
    again = distill(*args, seed=3)
    assert all(
        torch.equal(a, b) for a, b in zip(student.state_dict().values(), again.state_dict().values(), strict=True)
    )


def score_of(module: nn.Module, data) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(module.eval()(data.numeric, data.categorical)).numpy()


def test_torch_int8_agrees_with_fp32_and_keeps_the_input_layer_in_fp32(trained) -> None:
    assert int8_layers(trained.teacher) == ["mlp.3", "head"]
    q = quantize_int8(trained.teacher)
    assert type(q.mlp[0]) is nn.Linear  # the input layer stays float
    assert type(q.mlp[3]) is not nn.Linear and type(q.head) is not nn.Linear
    test = trained.data["test"]
    fp32 = TorchCandidate(
        name="fp32", architecture=trained.architecture, preprocessor=trained.prep, module=trained.teacher
    )
    int8 = TorchCandidate(name="int8", architecture=trained.architecture, preprocessor=trained.prep, module=q)
    num, cat = test.numeric.numpy(), test.categorical.numpy()
    diff = np.abs(score(int8, num, cat) - score(fp32, num, cat)).max()
    assert 0 < diff <= AGREEMENT_TOLERANCE["int8"]  # > 0: it really is another numeric form


@pytest.mark.slow
def test_onnx_forms_agree_with_fp32(trained) -> None:
    graph = export_onnx(trained.teacher, trained.prep)
    args = {"architecture": trained.architecture, "preprocessor": trained.prep}
    fp32 = TorchCandidate(name="fp32", module=trained.teacher, **args)
    onnx_fp32 = OnnxCandidate(name="onnx-fp32", model_bytes=graph, **args)
    onnx_int8 = OnnxCandidate(name="onnx-int8", model_bytes=quantize_onnx_int8(graph), **args)
    test = trained.data["test"]
    num, cat = test.numeric.numpy(), test.categorical.numpy()
    ref = score(fp32, num, cat)
    assert np.abs(score(onnx_fp32, num, cat) - ref).max() <= AGREEMENT_TOLERANCE["onnx-fp32"]
    diff = np.abs(score(onnx_int8, num, cat) - ref).max()
    assert 0 < diff <= AGREEMENT_TOLERANCE["onnx-int8"]
    # a dynamic batch: one row and many rows give that row the same fp32 score
    assert onnx_fp32.predict(num[:1], cat[:1])[0] == pytest.approx(ref[0], abs=1e-6)
    assert len(graph) > len(quantize_onnx_int8(graph))  # int8 weights take less space


def test_latency_covers_every_setting_and_restores_torch_threads(trained) -> None:
    spec = trained.spec.model_copy(
        update={"optimize": trained.spec.optimize.model_copy(update={"candidates": ["fp32", "int8"]})}
    )
    built = build_candidates(trained.teacher, trained.architecture, trained.prep, trained.data, spec, seed=1)
    assert list(built) == ["fp32", "int8"]
    before = torch.get_num_threads()
    test = trained.data["test"]
    out = latency(
        built, test.numeric.numpy()[:10], test.categorical.numpy()[:10], repeats=5, threads={"1t": 1, "allt": 2}
    )
    assert torch.get_num_threads() == before
    for name in built:
        for batch in (1, 256):  # 256 rows from a 10-row sample: rows repeat, the batch is full
            for threads in ("1t", "allt"):
                p50, p99 = out[name][latency_key(batch, threads, "p50")], out[name][latency_key(batch, threads, "p99")]
                assert 0 < p50 <= p99

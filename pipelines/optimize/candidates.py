"""Building the candidate forms of a trained model, each behind the same predict interface (forms.py).

fp32       the teacher as trained (the reference every other form is judged against)
int8       torch dynamic quantization: Linear weights int8, activations quantized per batch (input layer fp32)
pruned     global magnitude pruning of the Linear weights at `prune_amount`, `finetune_epochs` of fine-tuning
distilled  a TabularNet with hidden widths x `student_width`, trained on the teacher's soft targets
onnx-fp32  torch.onnx.export of the teacher (sigmoid included), run with ONNX Runtime
onnx-int8  onnxruntime.quantization.quantize_dynamic of that graph (as int8; embeddings stay fp32)

Everything runs on CPU and is seeded, so the same teacher, data and seed give the same candidates.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from pipelines.errors import FlywheelError
from pipelines.optimize.distillation import distill, student_architecture
from pipelines.optimize.forms import ONNX_INPUTS, ONNX_OUTPUT, Candidate, OnnxCandidate, TorchCandidate
from pipelines.optimize.pruning import prune_and_finetune, zero_fraction
from pipelines.spec import DatasetSpec
from pipelines.training.loop import Tensors
from pipelines.training.model import count_parameters
from pipelines.training.preprocess import Preprocessor

REFERENCE = "fp32"
ALL_FORMS = ("fp32", "int8", "pruned", "distilled", "onnx-fp32", "onnx-int8", "onnx-distilled")
ONNX_OPSET = 20
_MATMULS = ("MatMul", "Gemm")


def candidate_names(spec: DatasetSpec) -> list[str]:
    """The spec's candidates in a fixed order, fp32 always first: it is the reference the budget is judged on."""
    wanted = set(spec.optimize.candidates) | {REFERENCE}
    return [name for name in ALL_FORMS if name in wanted]


def build_candidates(
    teacher: nn.Module,
    architecture: dict,
    prep: Preprocessor,
    data: Mapping[str, Tensors],
    spec: DatasetSpec,
    seed: int,
) -> dict[str, Candidate]:
    """{name: candidate} for `candidate_names(spec)`; `data` holds train/validation/test tensors (data.py)."""
    teacher = copy.deepcopy(teacher).cpu().eval()
    settings, opt = spec.model, spec.optimize
    built: dict[str, Candidate] = {}
    fp32_onnx: bytes | None = None
    student: nn.Module | None = None
    for name in candidate_names(spec):
        if name == "fp32":
            built[name] = TorchCandidate(
                name=name,
                architecture=dict(architecture),
                preprocessor=prep,
                module=teacher,
                notes={"parameters": count_parameters(teacher)},
            )
        elif name == "int8":
            built[name] = TorchCandidate(
                name=name,
                architecture=dict(architecture),
                preprocessor=prep,
                module=quantize_int8(teacher),
                quantized_layers=int8_layers(teacher),
                notes={"parameters": count_parameters(teacher), "int8_layers": int8_layers(teacher)},
            )
        elif name == "pruned":
            module = prune_and_finetune(
                teacher, opt.prune_amount, opt.finetune_epochs, data["train"], data["validation"], settings, seed
            )
            built[name] = TorchCandidate(
                name=name,
                architecture=dict(architecture),
                preprocessor=prep,
                module=module,
                notes={
                    "parameters": count_parameters(module),
                    "zero_fraction": zero_fraction(module),
                    "finetune_epochs": opt.finetune_epochs,
                },
            )
        elif name == "distilled":
            student_arch = student_architecture(architecture, opt.student_width)
            module = distill(
                teacher, student_arch, data["train"], data["validation"], settings, opt.student_epochs, seed
            )
            student = module
            built[name] = TorchCandidate(
                name=name,
                architecture=student_arch,
                preprocessor=prep,
                module=module,
                notes={"parameters": count_parameters(module), "hidden_dims": list(student_arch["hidden_dims"])},
            )
        elif name in ("onnx-fp32", "onnx-int8"):
            fp32_onnx = fp32_onnx or export_onnx(teacher, prep)
            graph = fp32_onnx if name == "onnx-fp32" else quantize_onnx_int8(fp32_onnx)
            built[name] = OnnxCandidate(
                name=name,
                architecture=dict(architecture),
                preprocessor=prep,
                model_bytes=graph,
                notes={"parameters": count_parameters(teacher), "opset": ONNX_OPSET},
            )
        elif name == "onnx-distilled":
            # The student under ONNX Runtime: no eager-torch per-call floor, so it is the fast form at batch 1.
            student_arch = student_architecture(architecture, opt.student_width)
            if student is None:
                student = distill(
                    teacher, student_arch, data["train"], data["validation"], settings, opt.student_epochs, seed
                )
            built[name] = OnnxCandidate(
                name=name,
                architecture=student_arch,
                preprocessor=prep,
                model_bytes=export_onnx(student, prep),
                notes={"parameters": count_parameters(student), "opset": ONNX_OPSET},
            )
    return built


def int8_layers(module: nn.Module) -> list[str]:
    """The Linear layers the int8 forms quantize: all but the input layer.

    The input layer's inputs mix standardized features (clipped to +-20) with embeddings; one per-batch
    activation scale over that range costs most of the int8 error (measured: max |p - p_fp32| 0.03 with it,
    under 0.01 without), while it holds a small share of the weights of any model wide enough to gain from int8.
    """
    names = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    return names[1:]


def quantize_int8(module: nn.Module, layers: list[str] | None = None) -> nn.Module:
    """A copy with `layers` (default: int8_layers) replaced by torch dynamic int8 Linear modules."""
    try:
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic
    except ImportError as exc:  # torch.ao.quantization is deprecated in favour of torchao
        raise FlywheelError(
            f"torch {torch.__version__} has no torch.ao.quantization.quantize_dynamic: drop 'int8' from "
            "optimize.candidates (onnx-int8 remains) or pin a torch that still ships it"
        ) from exc
    names = int8_layers(module) if layers is None else layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the deprecation notice, every call
        warnings.simplefilter("ignore", UserWarning)  # quantized-tensor creation notice
        return quantize_dynamic(
            copy.deepcopy(module).cpu().eval(), {name: default_dynamic_qconfig for name in names}, dtype=torch.qint8
        )


class _Probabilities(nn.Module):
    """The teacher with its sigmoid, so the exported graph returns what the pyfunc returns."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(numeric, categorical).float())


def export_onnx(module: nn.Module, prep: Preprocessor) -> bytes:
    """The module as a serialized ONNX graph: inputs numeric/categorical with a dynamic batch, output probability."""
    wrapper = _Probabilities(copy.deepcopy(module).cpu().eval()).eval()
    # Two rows: torch.export specializes a batch dimension of size 1.
    example = (
        torch.zeros(2, prep.numeric_width, dtype=torch.float32),
        torch.zeros(2, len(prep.cardinalities), dtype=torch.int64),
    )
    batch = torch.export.Dim("batch")
    with tempfile.TemporaryDirectory() as tmp, _quiet_exporter():
        path = Path(tmp) / "model.onnx"
        program = torch.onnx.export(
            wrapper,
            example,
            dynamo=True,
            verbose=False,
            opset_version=ONNX_OPSET,
            input_names=list(ONNX_INPUTS),
            output_names=[ONNX_OUTPUT],
            dynamic_shapes={"numeric": {0: batch}, "categorical": {0: batch}},
        )
        if program is None:
            raise FlywheelError("torch.onnx.export returned no program: export the fp32 model by hand to see why")
        program.save(str(path), external_data=False)
        return path.read_bytes()


def quantize_onnx_int8(fp32_graph: bytes) -> bytes:
    """ONNX Runtime dynamic quantization: MatMul/Gemm weights int8 (per tensor), activations uint8 per batch;
    the input layer (the first MatMul/Gemm) stays fp32, as in int8_layers."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32_graph)
        # The recommended pre-pass: shape inference and graph clean-up before quantizing.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        matmuls = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in _MATMULS]  # topological order
        quantize_dynamic(
            str(pre),
            str(out),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(_MATMULS),
            # The dynamic quantizer first rewrites Gemm as "<name>_MatMul" + Add: exclude both spellings.
            nodes_to_exclude=[*matmuls[:1], *(f"{n}_MatMul" for n in matmuls[:1])],
        )
        quantized = sum(n.op_type == "MatMulInteger" for n in onnx.load(str(out)).graph.node)
        if quantized != len(matmuls) - 1:
            raise FlywheelError(
                f"onnx-int8: expected {len(matmuls) - 1} int8 matmuls (all but the input layer), got {quantized}; "
                "this onnxruntime's quantizer names nodes differently: drop 'onnx-int8' from optimize.candidates "
                "or pin onnxruntime 1.32"
            )
        return out.read_bytes()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter's progress lines and its notes about torchvision ops are not ours to show."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)

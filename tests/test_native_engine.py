"""The native core's ExecuTorch engine runs model.pte on the caller's numpy buffers, in the manifest's
order, with the eager module's outputs; a program that disagrees with its manifest is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from acre._native import Bundle as NativeBundle
from acre._native import Engine

from acre.bundle import Bundle
from acre.errors import BundleError, InputError
from acre.runtime.engines import ExecuTorchEngine, StepInputs, open_engine

TOL = 1e-3  # fp32 everywhere; XNNPACK reorders sums (~1e-6 measured)


def random_inputs(bundle: Bundle, rows: int, seed: int = 0) -> StepInputs:
    """Random step inputs (of whichever fields StepInputs has: the signature is changing)."""
    rng = np.random.default_rng(seed)
    g, pot = bundle.geometry, bundle.pot
    shape = (g.layers, g.kv_heads, pot, g.head_dim)
    dtype = np.dtype(bundle.kv_dtype)
    values = dict(
        tokens=rng.integers(0, g.vocab, rows),
        positions=np.arange(200, 200 + rows),
        pot_k=rng.standard_normal(shape, dtype=np.float32).astype(dtype),
        pot_v=rng.standard_normal(shape, dtype=np.float32).astype(dtype),
        pot_positions=rng.permutation(pot).astype(np.int64),
        pot_mask=rng.random(pot) < 0.6,
        last_index=np.array([rows - 1]),
    )
    return StepInputs(**{f.name: values[f.name] for f in fields(StepInputs)})


def test_the_engine_lists_the_manifests_inputs_and_outputs_with_the_programs_shapes(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    engine = Engine.executorch(NativeBundle(str(tiny_bundle)))
    step, g = bundle.manifest["step"], bundle.geometry
    methods = bundle.manifest["programs"]["executorch"]["methods"]
    assert methods == {"prefill": bundle.chunk, "decode": 1, "short": bundle.chunk // 4}
    for rows in methods.values():
        assert [name for name, _, _ in engine.inputs(rows)] == step["inputs"]
        assert [name for name, _, _ in engine.outputs(rows)] == step["outputs"]
        shapes = {name: (dtype, shape) for name, dtype, shape in engine.inputs(rows) + engine.outputs(rows)}
        assert shapes["tokens"] == ("int64", (rows,))
        pot = shapes.get("pot_k") or shapes["pot_k_0"]  # the whole pot, or one input per layer
        assert pot[0] == "float32" and pot[1][-3:] == (g.kv_heads, bundle.pot, g.head_dim)
        assert shapes["pot_mask"] == ("uint8", (bundle.pot,))
        assert shapes["k_new"] == ("float32", (g.layers, g.kv_heads, rows, g.head_dim))
        assert shapes["logits"] == ("float32", (g.vocab,))


@pytest.mark.parametrize("method", ["prefill", "short", "decode"])
def test_the_core_engine_gives_the_eager_modules_outputs(tiny_bundle, method):
    bundle = Bundle.open(tiny_bundle)
    rows = bundle.manifest["programs"]["executorch"]["methods"][method]
    inputs = random_inputs(bundle, rows)
    engine = ExecuTorchEngine(bundle)
    before = [a.copy() for a in engine.arrays(inputs)]
    out = engine.core.step(rows, engine.arrays(inputs))
    got = dict(zip(bundle.manifest["step"]["outputs"], out, strict=True))
    want = open_engine(bundle, "torch").step(inputs)
    for name, value in got.items():
        ref = getattr(want, name)
        assert value.shape == ref.shape and value.dtype == ref.dtype, name
        assert np.abs(value - ref).max() < TOL, name
    assert np.abs(got["pot_attention"][:, ~inputs.pot_mask]).max() == 0
    for a, b in zip(before, engine.arrays(inputs), strict=True):
        assert np.array_equal(a, b)  # the inputs are the caller's and stay as they were


def test_prefill_then_decode_alternate_on_one_engine(tiny_bundle):
    """The methods share one planned memory arena: each call's outputs are its own."""
    bundle = Bundle.open(tiny_bundle)
    engine, reference = ExecuTorchEngine(bundle), open_engine(bundle, "torch")
    short = bundle.chunk // 4
    for seed, rows in enumerate([bundle.chunk, 1, short, 1, bundle.chunk, short, 1]):
        inputs = random_inputs(bundle, rows, seed)
        got, want = engine.step(inputs), reference.step(inputs)
        assert np.abs(got.logits - want.logits).max() < TOL
        assert np.abs(got.k_new - want.k_new).max() < TOL


def test_buffers_of_the_wrong_dtype_or_size_are_input_errors(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    engine = ExecuTorchEngine(bundle)
    core, arrays, names = engine.core, engine.arrays(random_inputs(bundle, 1)), engine.input_names
    wrong_dtype = list(arrays)
    wrong_dtype[0] = arrays[0].astype(np.int32)
    with pytest.raises(InputError, match="step input tokens must be int64"):
        core.step(1, wrong_dtype)
    wrong_size, at = list(arrays), next(i for i, n in enumerate(names) if n.startswith("pot_k"))
    wrong_size[at] = arrays[at][..., :-1].copy()
    with pytest.raises(InputError, match=f"step input {names[at]}: .* bytes given, the decode method takes"):
        core.step(1, wrong_size)
    with pytest.raises(InputError, match="runs .* rows per call, not 3"):
        core.step(3, arrays)
    with pytest.raises(ValueError, match=f"takes {len(names)} inputs"):
        core.step(1, arrays[:-1])


def test_a_manifest_listing_other_inputs_than_the_program_is_refused(bundle_copy):
    def add_input(m):
        m["step"]["inputs"].append("pot_scale")

    text = (bundle_copy / "manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(text)
    count = len(manifest["step"]["inputs"])
    add_input(manifest)
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BundleError, match=f"has {count} inputs, the manifest lists {count + 1}; manifest"):
        Engine.executorch(NativeBundle(str(bundle_copy)))
    manifest = json.loads(text)
    names = manifest["step"]["inputs"]
    i = names.index("pot_mask")
    names[0], names[i] = names[i], names[0]  # same count, other order
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BundleError, match="input pot_mask has shape .* manifest and program disagree"):
        Engine.executorch(NativeBundle(str(bundle_copy)))


def test_a_file_that_is_not_a_program_is_refused(bundle_copy):
    from acre.bundle import file_entries, write_manifest

    (bundle_copy / "model.pte").write_bytes(b"not a program" * 100)
    manifest = json.loads((bundle_copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"].update(file_entries(bundle_copy, ["model.pte"]))
    write_manifest(bundle_copy, {k: v for k, v in manifest.items() if k not in ("format", "version")})
    with pytest.raises(BundleError, match="model.pte: ExecuTorch cannot load the program"):
        ExecuTorchEngine(Bundle.open(bundle_copy))


def test_the_run_path_with_a_pte_does_not_need_executorchs_python_runtime(tiny_bundle):
    """With `executorch` unimportable, the executorch engine still loads and steps (through the core)."""
    script = (
        "import sys; sys.modules['executorch'] = None\n"
        "from acre.bundle import Bundle\n"
        "from acre.runtime.engines import open_engine\n"
        "from tests.test_native_engine import random_inputs\n"
        f"bundle = Bundle.open({str(tiny_bundle)!r})\n"
        "out = open_engine(bundle, 'executorch').step(random_inputs(bundle, 1))\n"
        "assert 'executorch.runtime' not in sys.modules\n"
        "print(out.logits.shape[0])\n"
    )
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=repo)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(Bundle.open(tiny_bundle).geometry.vocab)


@pytest.fixture(scope="module")
def half_bundle(tiny_checkpoint_dir, tmp_path_factory) -> Path:
    from acre.exporter.export import export_bundle

    out = tmp_path_factory.mktemp("half") / "b"
    return export_bundle(
        out, ["android"], str(tiny_checkpoint_dir), chunk=16, pot=64, quantize="fp32", kv_dtype="float16"
    )


def test_a_float16_pot_runs_on_the_core(half_bundle):
    bundle = Bundle.open(half_bundle)
    engine = ExecuTorchEngine(bundle)
    assert {d for n, d, _ in engine.core.inputs(1) if n.startswith(("pot_k", "pot_v"))} == {"float16"}
    inputs = random_inputs(bundle, 1)
    got, want = engine.step(inputs), open_engine(bundle, "torch").step(inputs)
    assert got.k_new.dtype == np.float16
    assert np.abs(got.logits - want.logits).max() < 1e-2


def test_a_program_that_plans_no_inputs_or_outputs_runs_on_the_callers_buffers(bundle_copy):
    """Exported with alloc_graph_input/output=False, the program reads the pot where it is and writes
    its outputs into the buffers the core was given (set as the method's outputs, no copy)."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass

    from acre.bundle import file_entries, write_manifest
    from acre.exporter.programs import executorch_methods

    bundle = Bundle.open(bundle_copy)
    step = open_engine(bundle, "torch").model
    with torch.no_grad():
        programs = {
            name: torch.export.export(step, step.example_inputs(rows, bundle.pot))
            for name, rows in executorch_methods(bundle.chunk).items()
        }
    plan = MemoryPlanningPass(alloc_graph_input=False, alloc_graph_output=False)
    edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
    program = edge.to_executorch(ExecutorchBackendConfig(memory_planning_pass=plan))
    (bundle_copy / "model.pte").write_bytes(program.buffer)
    manifest = dict(bundle.manifest)
    manifest["files"].update(file_entries(bundle_copy, ["model.pte"]))
    write_manifest(bundle_copy, {k: v for k, v in manifest.items() if k not in ("format", "version")})

    bundle = Bundle.open(bundle_copy)
    engine, reference = ExecuTorchEngine(bundle), open_engine(bundle, "torch")
    for seed, rows in enumerate([bundle.chunk, 1, bundle.chunk]):
        inputs = random_inputs(bundle, rows, seed)
        got, want = engine.step(inputs), reference.step(inputs)
        for name in engine.output_names:
            assert np.abs(getattr(got, name) - getattr(want, name)).max() < TOL, name

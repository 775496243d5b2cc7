"""acre-export --budget: the whole process, measured on the exported program, decides the pot, the
K/V dtype and the weights; a budget nothing fits is refused with the smallest that does."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from acre.budget import slot_bytes
from acre.bundle import Bundle
from acre.errors import InputError
from acre.exporter.cli import main as export_main
from acre.exporter.fit import Config, Footprint, choose, export_within_budget, interpolated_pot
from acre.memory import MIB, SessionShape

from .conftest import TINY_CHUNK, make_tiny_model, make_tokenizer

WANT = 512
TOKENS = 20_000


@pytest.fixture(scope="module")
def wide_checkpoint(tmp_path_factory):
    """A tiny Llama with 8 KiB pot slots (the default tiny model's 1 KiB are within RSS noise)."""
    tokenizer = make_tokenizer()
    model = make_tiny_model(len(tokenizer), hidden_size=256, num_key_value_heads=4)
    out = tmp_path_factory.mktemp("wide-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def export(out, target, checkpoint, budget, **options):
    options = {"chunk": TINY_CHUNK, "pot": WANT, "quantize": "fp32"} | options
    return export_within_budget(out, target, str(checkpoint), budget, TOKENS, **options)


def recorded(bundle_dir) -> dict:
    return Bundle.open(bundle_dir).manifest["budget"]


def footprint_of(bundle_dir) -> Footprint:
    bundle, record = Bundle.open(bundle_dir), recorded(bundle_dir)
    step = bundle.manifest["step"]
    shape = SessionShape(
        geometry=bundle.geometry, pot_slots=step["pot"], kv_dtype=step["kv_dtype"], chunk=step["chunk"],
        span_tokens=64, reps=8, probe_layers=len(step["probe_layers"]),
    )  # fmt: skip
    return Footprint(shape, record["measured"]["runtime"], record["measured"]["program"])


@pytest.fixture(scope="module")
def roomy(wide_checkpoint, tmp_path_factory):
    return export(tmp_path_factory.mktemp("fit") / "roomy", "onnx", wide_checkpoint, 4 << 30)


def test_a_roomy_budget_keeps_what_was_asked_and_records_the_measurement(roomy):
    bundle, record = Bundle.open(roomy), recorded(roomy)
    assert bundle.manifest["step"]["pot"] == WANT and bundle.kv_dtype == "float32"
    assert record["given_up"] == [] and record["document_tokens"] == TOKENS
    assert record["measured"]["runtime"] > 10 * MIB and record["measured"]["program"] > 0
    assert record["predicted_peak_bytes"] == sum(record["predicted"].values()) <= 4 << 30
    assert not roomy.with_name("roomy.budget").exists()


def test_choice_gives_up_float32_keys_before_slots_and_slots_before_refusing(roomy):
    footprint = footprint_of(roomy)
    g, asked = footprint.shape.geometry, Config(WANT, "float32", "fp32")
    full, kvs = footprint.peak(TOKENS), ["float32", "float16"]
    saved = WANT * (slot_bytes(g) - slot_bytes(g, "float16"))
    assert choose(footprint, asked, kvs, TOKENS, full) == asked
    assert choose(footprint, asked, kvs, TOKENS, full - saved // 2) == Config(WANT, "float16", "fp32")
    shrunk = choose(footprint, asked, ["float32"], TOKENS, full - 100 * slot_bytes(g))
    assert shrunk == Config(384, "float32", "fp32")  # 64-slot steps: 448 is 36 slots over
    least = footprint.with_pot(WANT, "float16").smallest_budget(TOKENS)
    assert choose(footprint, asked, kvs, TOKENS, least).pot == 256
    assert choose(footprint, asked, kvs, TOKENS, least - 1) is None


def test_a_tighter_budget_exports_float16_keys_and_measures_them(roomy, wide_checkpoint, tmp_path):
    g = Bundle.open(roomy).geometry
    budget = recorded(roomy)["predicted_peak_bytes"] - WANT * (slot_bytes(g) - slot_bytes(g, "float16")) // 2
    out = export(tmp_path / "b", "onnx", wide_checkpoint, budget)
    assert Bundle.open(out).kv_dtype == "float16" and Bundle.open(out).manifest["step"]["pot"] == WANT
    assert recorded(out)["given_up"] == ["K/V float32 -> float16"]
    assert recorded(out)["predicted_peak_bytes"] <= budget


def test_android_keeps_float32_keys_and_gives_up_slots(wide_checkpoint, tmp_path):
    footprint = footprint_of(export(tmp_path / "roomy", "android", wide_checkpoint, 4 << 30))
    budget = footprint.peak(TOKENS) - 160 * slot_bytes(footprint.shape.geometry)
    out = export(tmp_path / "b", "android", wide_checkpoint, budget)
    chosen, record = Bundle.open(out), recorded(out)
    pot = chosen.manifest["step"]["pot"]
    assert chosen.kv_dtype == "float32" and 256 <= pot < WANT and pot % 64 == 0
    assert record["given_up"] == [f"pot {WANT} -> {pot}"] and record["predicted_peak_bytes"] <= budget
    # at least the pot the larger program's measurement fits (a smaller pot's program is smaller), and
    # its own measurement fits: 160 slots over is 32 slots from either 64-slot step
    assert pot >= footprint.with_pot(WANT, "float32").fit(TOKENS, budget) == 320
    assert footprint_of(out).peak(TOKENS) <= budget


def test_a_second_measurement_interpolates_the_programs_growth_with_the_pot(roomy):
    at_512 = footprint_of(roomy)
    per_slot = slot_bytes(at_512.shape.geometry)
    # a program that shrinks by 0.5 slot a slot: at 256 slots it is 128 slots smaller than at 512
    at_256 = replace(at_512, program=at_512.program - 128 * per_slot)
    at_256 = at_256.with_pot(256, "float32")
    budget = at_256.peak(TOKENS) + 100 * per_slot  # room for 100 slots growing 1.5 slots each: 66
    assert interpolated_pot(at_512, 512, at_256, 256, TOKENS, budget) == 320
    assert interpolated_pot(at_512, 512, at_256, 256, TOKENS, at_256.peak(TOKENS)) == 256
    assert interpolated_pot(at_512, 512, at_256, 256, TOKENS, 1 << 40) == 512


def test_a_budget_nothing_fits_is_refused_with_the_smallest_that_does(wide_checkpoint, tmp_path, capsys):
    args = ["--target", "onnx", "--model", str(wide_checkpoint), "--quantize", "fp32", "--chunk", "16"]
    args += ["--tokens", "1000", "--out", str(tmp_path / "b")]
    assert export_main([*args, "--budget", "10MB"]) == 2
    err = capsys.readouterr().err
    assert "does not fit a 1,000-token document" in err and "smallest budget that fits is" in err
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.budget").exists()
    smallest = int(err.split("smallest budget that fits is ")[1].split(" MiB")[0].replace(",", ""))
    assert smallest > 10  # the runtime alone holds more than 10 MiB
    assert export_main([*args, "--budget", f"{smallest}MB"]) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "b" / "manifest.json").read_text())["budget"]
    assert record["predicted_peak_bytes"] <= smallest * MIB


def test_budget_needs_a_target_this_machine_measures(tiny_checkpoint):
    with pytest.raises(InputError, match="do not run on this machine"):
        export_within_budget("unused", "ios", tiny_checkpoint, 1 << 30)

"""The real-scale end-to-end command (``scripts/bench_e2e.sh`` = ``python -m benchmarks.e2e.run``) in its tiny
form: random-weight checkpoints in the real on-disk layouts at tiny widths, loaded by the SHIPPED configs
(``student=fastwan22_ti2v_5b teacher=qwen3_vl_4b``) with only paths and CPU settings overridden, through
``python -m harness.eval`` on RULER-format data (stub judge) and VBVR-format data (official scorers), the
failure probe, and the report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from benchmarks.e2e import checkpoints as ck
from benchmarks.e2e.fixtures import N_RULER, N_VBVR
from harness import runner
from tests.cli import ROOT

METHODS = ("frozen", "vlmteach")


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    work, out = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("out")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.e2e.run", "--tiny", "--work", str(work), "--out", str(out),
                           "--methods", ",".join(METHODS), "--budget-s", "300"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work, out, json.loads((out / "e2e_tiny_cpu.json").read_text()), (out / "e2e_tiny_cpu.md").read_text()


def test_every_method_and_benchmark_ends_in_ok_records_and_the_report_says_so(e2e):
    _, _, report, md = e2e
    rows = {(r["bench"], r["method"]): r for r in report["rows"]}
    assert set(rows) == {(b, m) for b in ("ruler", "vbvr") for m in METHODS} and not report["not_run"]
    for (bench, method), row in rows.items():
        assert row["ok"] == row["expected"] == {"ruler": N_RULER, "vbvr": N_VBVR}[bench], (bench, method, row)
        assert row["failures"] == [] and row["generate_s"] > 0 and row["score_s"] > 0
        assert row["peak_gpu_mem_gib"] is None  # a CPU run records no GPU peak
        assert row["steps"] == (2 if method == "vlmteach" else 0)
        assert f"| {bench} | {method} | {row['ok']} / {row['expected']} | {row['generate_s']:.2f} |" in md
    assert "## Comparison: ruler" in md and "## Comparison: vbvr" in md and "| vlmteach |" in md
    overrides = report["settings"]["model_overrides"]
    assert "student=fastwan22_ti2v_5b" in overrides and "teacher=qwen3_vl_4b" in overrides


def test_the_oversized_instance_is_that_instances_error_and_the_run_goes_on(e2e):
    _, _, report, md = e2e
    probe = report["probe"]
    assert probe["ok"] and probe["others_ok"] == probe["others"] == 1
    assert probe["oversized"]["status"] == "error" and probe["oversized"]["error_stage"] == "generate"
    assert "multiples of 32" in probe["oversized"]["error"]
    assert "PASS" in md and report["settings"]["oom_instance"] in md


def test_a_later_call_for_one_benchmark_reports_the_earlier_calls_benchmark_too(e2e, tmp_path):
    """On the GPU the packages take two calls (RULER, then VBVR); the second call's report holds both."""
    from benchmarks.e2e import report as e2e_report

    work, _, first, _ = e2e
    settings = {**first["settings"], "benches": ["vbvr"], "limit": 1}  # each run's own plan sets what is expected
    complete = e2e_report.write(tmp_path, runs_root=work / "runs", commands=[], checkpoints={}, settings=settings,
                                log=work / "e2e.log")
    second = json.loads((tmp_path / "e2e_tiny_cpu.json").read_text())
    assert complete and [(r["bench"], r["method"]) for r in second["rows"]] == [
        ("vbvr", m) for m in METHODS] + [("ruler", m) for m in METHODS]
    assert set(second["tables"]) == {"ruler", "vbvr"}
    assert "Not asked for in this call" in (tmp_path / "e2e_tiny_cpu.md").read_text()  # no probe command this time


def test_the_shipped_configs_load_the_layouts_as_written(e2e):
    """The loaded modules have the shapes the writer wrote (real layout, tiny widths)."""
    from harness.students.wan import WanStudent
    from harness.teachers.qwen_vl import QwenVLTeacher

    work, *_ = e2e
    ckpt = work / "ckpt"
    written = json.loads((ckpt / ck.MARKER).read_text())
    student = WanStudent.from_pretrained(path=str(ckpt / ck.FASTWAN_DIR), dtype="bfloat16", device="cpu",
                                         light_decoder={"kind": "taehv", "path": str(ckpt / ck.TAEHV_FILE),
                                                        "latent_convention": "raw", "dtype": "bfloat16"})
    config = dict(student.transformer.config)
    for key, value in ck.WAN_TRANSFORMER_TINY.items():
        assert (list(config[key]) if isinstance(value, list) else config[key]) == value, key
    assert len(student.transformer.blocks) == 30 and student.dtype == torch.bfloat16
    assert student.vae.config.z_dim == 48 and student.vae.config.scale_factor_spatial == 16
    assert student.text_encoder.config.d_model == ck.UMT5_TINY["d_model"] == student.transformer.config.text_dim
    assert student.light_decoder.decoder.t_upscale == 4 and student.light_decoder.decoder.s_upscale == 16
    assert student.latent_shape(9, 64, 64) == (1, 48, 3, 4, 4)
    teacher = QwenVLTeacher.from_pretrained(path=str(ckpt / ck.QWEN_DIR), device="cpu", dtype="bfloat16")
    ids = written["configs"]["qwen"]["special_ids"]
    assert teacher.model.config.video_token_id == ids["<|video_pad|>"] == ck.QWEN_TINY_FIRST_SPECIAL + 13
    assert teacher.model.config.text_config.hidden_size == ck.QWEN_TEXT_TINY["hidden_size"]
    assert teacher.video_token == "<|video_pad|>" and teacher.vision_start == "<|vision_start|>"
    text = teacher.chat_text([{"type": "video"}, {"type": "text", "text": "Is it red?"}])
    assert text == "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Is it red?<|im_end|>\n<|im_start|>assistant\n"
    assert teacher.spec.patch_size == 16 and teacher.spec.video_budget == "per_video"


def test_the_real_layouts_carry_the_published_sizes():
    """The real-size writer's facts (no weights written here): parameter counts of the configs it builds."""
    from diffusers import WanTransformer3DModel
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    with torch.device("meta"):
        dit = WanTransformer3DModel(**ck.WAN_TRANSFORMER)
        qwen = Qwen3VLForConditionalGeneration(Qwen3VLConfig(text_config=ck.QWEN_TEXT, vision_config=ck.QWEN_VISION,
                                                             tie_word_embeddings=True))
    assert 4.9e9 < sum(p.numel() for p in dit.parameters()) < 5.1e9
    assert 4.3e9 < sum(p.numel() for p in qwen.parameters()) < 4.5e9  # Qwen3-VL-4B: 4.4B, tied embeddings
    assert ck.build_qwen_tokenizer(ck.QWEN_FIRST_SPECIAL).convert_tokens_to_ids("<|video_pad|>") == 151656


def test_peak_gpu_memory_is_recorded_only_where_cuda_is_in_use(monkeypatch):
    assert runner.peak_gpu_memory() == {} or torch.cuda.is_initialized()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 3 * 2**30)
    runner.reset_peak_gpu_memory()
    assert runner.peak_gpu_memory() == {"peak_gpu_mem_gib": 3.0}


def test_the_gpu_probes_first_frame_is_one_the_loader_reads():
    """At 16384^2 PIL's decompression-bomb check stopped the GPU run's probe before any instance ran."""
    from PIL import Image

    from benchmarks.e2e.fixtures import OOM_SIZE

    assert OOM_SIZE**2 < 2 * Image.MAX_IMAGE_PIXELS and OOM_SIZE % 32 == 0  # PIL refuses from 2x its limit

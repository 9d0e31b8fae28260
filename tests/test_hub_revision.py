"""Hub weights pinned by ``revision`` and fingerprinted by the commit they resolve to, on a fake Hugging Face cache
(``models--org--name/refs/main``, ``snapshots/<commit>/...``) read offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants

from harness.fingerprint import changed_weights, weights_fingerprint
from harness.loading import PROJECT_ROOT, resolve_model_dir
from harness.students.light_decoder import load_checkpoint
from harness.types import UserError
from tests.cli import harness_eval, run_directory

COMMIT = "0123456789abcdef0123456789abcdef01234567"
ABSENT = "fedcba9876543210fedcba9876543210fedcba98"
MICRO = PROJECT_ROOT / "benchmarks" / "micro" / "weights"
DECODER = "patch_linear_micro.safetensors"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """The micro teacher as org/tiny-teacher and the micro light decoder in org/tiny-decoder, main at COMMIT."""
    cache = tmp_path / "hub"
    for repo, copy in (("tiny-teacher", lambda dest: shutil.copytree(MICRO / "teacher", dest)),
                       ("tiny-decoder", lambda dest: shutil.copy2(MICRO / "student" / "light_decoder" / DECODER,
                                                                  dest.mkdir(parents=True) or dest / DECODER))):
        folder = cache / f"models--org--{repo}"
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(COMMIT)
        copy(folder / "snapshots" / COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # for harness.eval in a subprocess
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # this process read the variables at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_the_fingerprint_records_the_commit_a_revision_resolves_to(hub_cache):
    config = {"teacher": {"path": "org/tiny-teacher", "revision": None},
              "student": {"light_decoder": {"path": f"org/tiny-decoder/{DECODER}", "revision": "main"}},
              "judge": {"teacher": {"path": "org/not-downloaded", "revision": "v1"}}}
    assert weights_fingerprint(config) == {
        "teacher.path": f"hub:org/tiny-teacher@{COMMIT}",
        "student.light_decoder.path": f"hub:org/tiny-decoder/{DECODER}@{COMMIT}",
        "judge.teacher.path": "hub:org/not-downloaded@v1 (unresolved)",
    }
    config["teacher"]["revision"] = COMMIT
    assert weights_fingerprint(config)["teacher.path"] == f"hub:org/tiny-teacher@{COMMIT}"
    # Another commit is other weights; an entry nobody could resolve (before its download) is compared with nothing.
    assert changed_weights({"teacher.path": f"hub:org/tiny-teacher@{ABSENT}"}, weights_fingerprint(config)) == ["teacher.path"]
    assert changed_weights({"judge.teacher.path": f"hub:org/not-downloaded@{COMMIT}"}, weights_fingerprint(config)) == []


def test_a_revision_loads_its_snapshot_and_a_missing_one_says_how_to_download_it(hub_cache):
    snapshot = hub_cache / "models--org--tiny-teacher" / "snapshots" / COMMIT
    for revision in (None, "main", COMMIT):
        assert resolve_model_dir("org/tiny-teacher", config_key="teacher.path", marker="config.json",
                                 allow_patterns=["*"], revision=revision) == snapshot
    assert load_checkpoint(f"org/tiny-decoder/{DECODER}", COMMIT)
    with pytest.raises(UserError, match=rf"hf download org/tiny-teacher --revision {ABSENT}\n(.|\n)*teacher.path="):
        resolve_model_dir("org/tiny-teacher", config_key="teacher.path", marker="config.json", allow_patterns=["*"],
                          revision=ABSENT)
    with pytest.raises(UserError, match=rf"hf download org/tiny-decoder {DECODER} --revision {ABSENT}\n"):
        load_checkpoint(f"org/tiny-decoder/{DECODER}", ABSENT)


def test_a_run_with_a_pinned_hub_teacher_records_its_commit(hub_cache, tmp_path):
    pinned = ("teacher.path=org/tiny-teacher", "method=best_of_n", "method.n=2", "limit=1", f"output_root={tmp_path / 'runs'}")
    run = run_directory(harness_eval(*pinned, f"teacher.revision={COMMIT}").stdout)
    (manifest,) = run.glob("manifest*.json")
    assert json.loads(manifest.read_text())["weights"]["teacher.path"] == f"hub:org/tiny-teacher@{COMMIT}"
    missing = harness_eval(*pinned, f"teacher.revision={ABSENT}", expect=2).stdout
    assert f"hf download org/tiny-teacher --revision {ABSENT}" in missing

"""Weights fingerprints: what changes them and what does not."""

from harness import fingerprint
from harness.fingerprint import weights_fingerprint


def test_fingerprint_follows_file_contents_names_and_every_path_key(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "a.safetensors").write_bytes(b"weights")
    config = {"student": {"path": str(model), "light_decoder": {"path": str(model / "a.safetensors")}},
              "teacher": {"path": "Org/Some-Model"}, "seed": 0}
    first = weights_fingerprint(config)
    assert set(first) == {"student.path", "student.light_decoder.path", "teacher.path"}
    # Not a local path, and neither the hub (offline) nor the cache knows it: the id, unresolved (tests/test_hub_revision.py)
    assert first["teacher.path"] == "hub:Org/Some-Model@default (unresolved)"
    assert weights_fingerprint(config) == first
    (model / "a.safetensors").write_bytes(b"weightz")
    second = weights_fingerprint(config)
    assert second["student.path"] != first["student.path"]
    assert second["student.light_decoder.path"] != first["student.light_decoder.path"]
    (model / "a.safetensors").rename(model / "b.safetensors")
    assert weights_fingerprint(config)["student.path"] != second["student.path"]


def test_large_files_are_hashed_by_size_and_edges(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprint, "FULL_HASH_LIMIT", 8)
    monkeypatch.setattr(fingerprint, "_EDGE", 4)
    big = tmp_path / "big.bin"
    big.write_bytes(b"head" + b"middle" + b"tail")
    config = {"student": {"path": str(big)}}
    base = weights_fingerprint(config)
    big.write_bytes(b"head" + b"MIDDLE" + b"tail")
    assert weights_fingerprint(config) == base  # the middle of a huge file is not read
    big.write_bytes(b"head" + b"middle" + b"TAIL")
    assert weights_fingerprint(config) != base

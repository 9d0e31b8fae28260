"""The micro teacher builder, its tokenizer, the committed weights and the teacher configs."""

import inspect
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_method, instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file

import harness.config  # noqa: F401  (registers the run schema that conf/config.yaml composes)
from harness.teachers import QwenVLTeacher
from harness.teachers.queries import fallback_queries
from lab.micro import weights_teacher as micro

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "benchmarks/micro/weights/teacher"


def test_builder_is_seeded_small_and_loadable(tmp_path):
    a = micro.build_micro_teacher(tmp_path / "a", seed=0)
    b = micro.build_micro_teacher(tmp_path / "b", seed=0)
    c = micro.build_micro_teacher(tmp_path / "c", seed=1)
    wa, wb, wc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert sum(f.stat().st_size for f in a.iterdir()) < 3 * 2**20
    teacher = QwenVLTeacher.from_pretrained(path=str(a), device="cpu")
    assert teacher.model.config.model_type == "qwen3_vl"


def test_builder_sizes_set_the_widths_and_refuse_unknown_names(tmp_path):
    small = micro.build_micro_teacher(tmp_path / "small", size="small")
    teacher = QwenVLTeacher.from_pretrained(path=str(small), device="cpu")
    dims = micro.SIZES["small"]
    config = teacher.model.config
    assert (config.text_config.hidden_size, config.vision_config.hidden_size) == (dims.text_width, dims.vision_width)
    assert config.vision_config.out_hidden_size == dims.text_width  # the merger feeds the language model
    micro_params = sum(p.numel() for p in QwenVLTeacher.from_pretrained(path=str(COMMITTED), device="cpu")
                       .model.parameters())
    assert sum(p.numel() for p in teacher.model.parameters()) > 2 * micro_params
    nll = teacher.yes_nll(torch.rand(4, 3, 32, 32), ["Is the red square on the green cell?"])
    assert nll.shape == (1,) and torch.isfinite(nll).all()
    with pytest.raises(ValueError, match="choose one of"):
        micro.build_micro_teacher(tmp_path / "huge", size="huge")


def test_tokenizer_has_model_tokens_and_splits_json():
    tok = micro.build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in micro.SPECIAL_TOKENS}
    assert list(ids.values()) == list(range(len(micro.SPECIAL_TOKENS)))  # the ids the model config uses
    assert len(tok.encode("Yes", add_special_tokens=False)) == 1
    assert tok.encode("Yes", add_special_tokens=False) != tok.encode("yes", add_special_tokens=False)
    tokens = tok.convert_ids_to_tokens(tok.encode('{"goal": "Is the RED agent at 12?"}', add_special_tokens=False))
    assert tokens == ["{", '"', "goal", '"', ":", '"', "is", "the", "red", "agent", "at", "1", "2", "?", '"', "}"]
    assert tok.convert_ids_to_tokens(tok.encode("zyzzyva", add_special_tokens=False)) == ["[UNK]"]
    message = {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Is it?"}]}
    text = tok.apply_chat_template([message], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Is it?<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")


def test_committed_micro_teacher_sees_32px_frames_unresized():
    teacher = instantiate(OmegaConf.load(ROOT / "conf/teacher/micro.yaml"), device="cpu")
    assert isinstance(teacher, QwenVLTeacher)
    frames = torch.rand(8, 3, 32, 32, requires_grad=True)
    video = teacher.encode_video(frames)
    assert video.grid == (4, 4, 4)  # 8 frames -> 4 time groups; 32 px -> 4x4 patches of 8 px
    assert video.features.pooler_output[0].shape[0] == 4 * 2 * 2  # one LLM token per 2x2 patches
    nll = teacher.score_video(video, ["Is the agent on the goal?", "Does the agent stay whole?"])
    nll.sum().backward()
    assert frames.grad.abs().sum() > 0
    assert (COMMITTED / "model.safetensors").stat().st_size < 3 * 2**20
    # A changed micro vocabulary needs a rebuilt (and retrained) teacher.
    assert teacher.tokenizer.get_vocab() == micro.build_tokenizer().get_vocab(), \
        "rebuild: python -m lab.micro.weights_teacher"


@pytest.mark.parametrize("name", ["micro", "qwen3_vl_4b", "qwen3_vl_8b", "qwen25_vl_7b"])
def test_teacher_configs_match_the_constructor(name):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):  # a variant inherits its base
        cfg = OmegaConf.to_container(compose(config_name="config", overrides=[f"teacher={name}"]).teacher)
    target = get_method(cfg.pop("_target_"))
    params = inspect.signature(target).parameters
    assert set(cfg) == set(params), set(cfg) ^ set(params)  # every knob visible in the YAML, no typos
    if name != "micro":
        assert cfg["dtype"] == "bfloat16" and "/" in cfg["path"]


def test_tokenizer_reads_every_micro_prompt_without_unknown_words():
    from benchmarks.micro import generate_instances
    tok = micro.build_tokenizer()
    for split in ("id", "ood"):
        for instance in generate_instances(split, n_per_family=2, seed=123):
            ids = tok.encode(instance.prompt, add_special_tokens=False)
            assert tok.unk_token_id not in ids, instance.prompt
            queries = fallback_queries(instance.prompt, 3)  # the fallback questions too
            assert all(tok.unk_token_id not in tok.encode(q, add_special_tokens=False) for q in queries.all)

"""load_checkpoint: every supported layout loads the exact weights; unsafe or mismatched files are refused."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import geometry_probe as gp
from geometry_probe.checkpoint_sweep import iter_checkpoint_embeddings
from geometry_probe.checkpoints import load_checkpoint
from geometry_probe.exceptions import InputFileError, InvalidInputError, UnsafeFileError

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    return _models.train_and_save(folder, steps=(0, 5, 10))


def trained_state(step):
    """The state_dict after ``step`` SGD updates, recomputed independently of any file."""
    model = _models.make_model()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    X, y = _models.make_tensors()
    for _ in range(step):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        optimiser.step()
    return model.state_dict()


def assert_state_equal(model, state):
    own = model.state_dict()
    assert set(own) == set(state)
    for key, value in state.items():
        assert torch.equal(own[key], value), key


def test_plain_state_dict_loads_the_weights_of_that_step(saved):
    model = _models.make_model()
    info = load_checkpoint(model, saved[10])
    assert_state_equal(model, trained_state(10))
    assert not torch.equal(trained_state(10)["head.weight"], trained_state(0)["head.weight"])
    assert (info.format, info.prefix, info.ignored_keys, info.step) == ("state_dict", "", (), None)


def test_extraction_after_loading_matches_the_trained_model(saved):
    X, _ = _models.make_tensors()
    model = _models.make_model()
    load_checkpoint(model, saved[5])
    reference = _models.make_model()
    reference.load_state_dict(trained_state(5))
    reference.eval()
    with torch.no_grad():
        expected = reference.head(reference.encoder(X))
    out = gp.extract(model, _models.make_data(), ["head"], device="cpu")["head"]
    assert torch.equal(torch.from_numpy(np.array(out.X)), expected)


def test_lightning_checkpoint_with_prefix_and_other_submodules(tmp_path):
    state = trained_state(5)
    ckpt = {"state_dict": {**{f"model.{k}": v for k, v in state.items()}, "criterion.weight": torch.ones(3)},
            "global_step": 25, "epoch": 2, "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
            "hyper_parameters": {"lr": 0.1, "layers": [16, 8]}, "pytorch-lightning_version": "2.4.0"}
    path = tmp_path / "epoch=2-step=25.ckpt"
    torch.save(ckpt, path)
    model = _models.make_model()
    info = load_checkpoint(model, path)
    assert_state_equal(model, state)
    assert (info.format, info.prefix, info.ignored_keys, info.step, info.epoch) == (
        "lightning", "model.", ("criterion.weight",), 25, 2)


@pytest.mark.parametrize("prefix", ["module.", "model.module.", "_orig_mod."])
def test_wrapper_prefixes_are_detected(tmp_path, prefix):
    state = trained_state(5)
    path = tmp_path / "w.pt"
    torch.save({f"{prefix}{k}": v for k, v in state.items()}, path)
    model = _models.make_model()
    assert load_checkpoint(model, path).prefix == prefix
    assert_state_equal(model, state)


@pytest.mark.parametrize("key, fmt", [("model", "model_key"), ("model_state_dict", "model_state_dict")])
def test_dict_with_the_weights_under_a_key(tmp_path, key, fmt):
    state = trained_state(5)
    path = tmp_path / "c.pt"
    torch.save({key: state, "optimizer": {"state": {}, "param_groups": []}, "step": 7}, path)
    model = _models.make_model()
    info = load_checkpoint(model, path)
    assert_state_equal(model, state)
    assert (info.format, info.step) == (fmt, 7)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    state = trained_state(10)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = _models.make_model()
    assert load_checkpoint(model, path).format == "safetensors"
    assert_state_equal(model, state)


class _Payload:
    """Unpickling this object creates ``marker`` (stands for arbitrary code execution)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    """A checkpoint carrying pickled code is refused (weights_only) and the payload never runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": trained_state(0), "extra": _Payload(marker)}, path)
    with pytest.raises(UnsafeFileError, match="refused.*state_dict"):
        load_checkpoint(_models.make_model(), path)
    assert not marker.exists()
    # the payload is real: a plain unpickling would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_whole_pickled_model_is_refused(tmp_path):
    """A whole pickled nn.Module (torch.save(model)) is refused with a message saying to save a state dict."""
    path = tmp_path / "model.pt"
    torch.save(_models.Net(), path)
    with pytest.raises(UnsafeFileError, match=r"torch.save\(model.state_dict\(\), path\)"):
        load_checkpoint(_models.make_model(), path)


def test_missing_unexpected_and_misshapen_keys_are_listed(tmp_path):
    state = trained_state(0)
    broken = {k: v for k, v in state.items() if not k.startswith("head.")}
    broken["extra.weight"] = torch.zeros(2)
    torch.save(broken, tmp_path / "a.pt")
    with pytest.raises(InvalidInputError, match=r"2 of the model's keys are missing.*head\.weight.*extra\.weight"):
        load_checkpoint(_models.make_model(), tmp_path / "a.pt")
    misshapen = dict(state, **{"head.weight": torch.zeros(4, 8)})
    torch.save(misshapen, tmp_path / "b.pt")
    with pytest.raises(InvalidInputError, match=r"head\.weight: checkpoint \(4, 8\) vs model \(3, 8\)"):
        load_checkpoint(_models.make_model(), tmp_path / "b.pt")


def test_non_strict_loading_keeps_the_models_own_values_for_missing_keys(tmp_path):
    state = trained_state(5)
    torch.save({k: v for k, v in state.items() if not k.startswith("head.")}, tmp_path / "a.pt")
    model = _models.make_model()
    initial_head = model.head.weight.clone()
    load_checkpoint(model, tmp_path / "a.pt", strict=False)
    assert torch.equal(model.head.weight, initial_head)
    assert torch.equal(model.encoder[0].weight, state["encoder.0.weight"])


def test_ambiguous_prefixes_need_an_explicit_choice(tmp_path):
    a, b = trained_state(0), trained_state(5)
    torch.save({"state_dict": {**{f"student.{k}": v for k, v in a.items()},
                               **{f"teacher.{k}": v for k, v in b.items()}}}, tmp_path / "c.ckpt")
    with pytest.raises(InvalidInputError, match=r"\['student\.', 'teacher\.'\]"):
        load_checkpoint(_models.make_model(), tmp_path / "c.ckpt")
    model = _models.make_model()
    load_checkpoint(model, tmp_path / "c.ckpt", prefix="teacher.")
    assert_state_equal(model, b)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputFileError, match="no such checkpoint"):
        load_checkpoint(_models.make_model(), tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(InputFileError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(_models.make_model(), tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(InputFileError, match="safetensors"):
        load_checkpoint(_models.make_model(), tmp_path / "junk.safetensors")
    torch.save({"config": {"lr": 0.1}}, tmp_path / "empty.pt")
    with pytest.raises(InvalidInputError, match="no tensors found.*config"):
        load_checkpoint(_models.make_model(), tmp_path / "empty.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(InvalidInputError, match="holds a list"):
        load_checkpoint(_models.make_model(), tmp_path / "list.pt")


def eval_head(state):
    model = _models.make_model()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return model.head(model.encoder(_models.make_tensors()[0]))


def test_checkpoint_sweep_in_natural_order_with_exact_embeddings(saved):
    folder = saved[0].parent
    seen = list(iter_checkpoint_embeddings(_models.make_model(), _models.make_data(), str(folder / "step_*.pt"),
                                           "head", device="cpu"))
    assert [(path.name, step) for path, step, _ in seen] == [("step_0.pt", 0), ("step_5.pt", 5), ("step_10.pt", 10)]
    for _, step, emb in seen:
        assert torch.equal(torch.from_numpy(np.array(emb.X)), eval_head(trained_state(step)))
        assert emb.meta["step"] == step and emb.labels.tolist() == _models.make_tensors()[1].tolist()


def test_checkpoint_sweep_prefers_the_stored_global_step(tmp_path):
    for epoch, step in ((1, 5), (0, 0)):
        state = {f"model.{k}": v for k, v in trained_state(step).items()}
        torch.save({"state_dict": state, "global_step": 100 * step}, tmp_path / f"epoch={epoch}.ckpt")
    seen = list(iter_checkpoint_embeddings(_models.make_model(), _models.make_data(), [tmp_path / "epoch=*.ckpt"],
                                           "head", device="cpu"))
    assert [(path.name, step) for path, step, _ in seen] == [("epoch=0.ckpt", 0), ("epoch=1.ckpt", 500)]
    assert torch.equal(torch.from_numpy(np.array(seen[1][2].X)), eval_head(trained_state(5)))


def test_checkpoint_sweep_errors(saved, tmp_path):
    with pytest.raises(InputFileError, match="no file matches"):
        list(iter_checkpoint_embeddings(_models.make_model(), _models.make_data(), str(tmp_path / "*.pt"), "head"))
    one_shot = iter(list(_models.make_data()))
    with pytest.raises(InvalidInputError, match="one-shot iterator"):
        list(iter_checkpoint_embeddings(_models.make_model(), one_shot, str(saved[0]), "head"))

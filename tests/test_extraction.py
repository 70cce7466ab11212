"""gp.extract: hooks give exactly what a manual forward pass gives; pooling, memory, errors."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import geometry_probe as gp
from geometry_probe.exceptions import InvalidInputError, OutputError

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402


def manual_encoder_outputs(model, X):
    """Eval-mode outputs of encoder.0 (before its in-place ReLU), encoder (after BN+ReLU) and head."""
    model.eval()
    with torch.no_grad():
        first = model.encoder[0](X)
        encoded = model.encoder(X)
        head = model.head(encoded)
    return first, encoded, head


def as_tensor(emb):
    return torch.from_numpy(np.array(emb.X))


def test_extracted_rows_equal_a_manual_forward_pass_exactly():
    model, loader = _models.make_model(), _models.make_data()
    X, y = _models.make_tensors()
    model.train()
    out = gp.extract(model, loader, ["encoder.0", "encoder", "head"], device="cpu")
    first, encoded, head = manual_encoder_outputs(_models.make_model(), X)
    # encoder.0 is followed by ReLU(inplace=True): the stored rows must be the pre-ReLU values
    assert (first < 0).any()
    assert torch.equal(as_tensor(out["encoder.0"]), first)
    assert torch.equal(as_tensor(out["encoder"]), encoded)
    assert torch.equal(as_tensor(out["head"]), head)
    assert out["head"].labels.tolist() == y.tolist()
    assert list(out) == ["encoder.0", "encoder", "head"]
    assert out["head"].X.dtype == np.float32


def test_train_flags_hooks_and_device_are_restored():
    model = _models.make_model()
    model.train()
    model.head.eval()                       # a mixed state must come back as it was
    gp.extract(model, _models.make_data(), ["encoder.2"], device="cpu")
    assert model.training and model.encoder.training and model.dropout.training and not model.head.training
    assert all(not m._forward_hooks for m in model.modules())
    assert torch.is_grad_enabled()


def test_state_is_restored_after_an_error_inside_a_hook():
    model = _models.make_tokens_model()
    model.train()
    X = torch.randn(8, 5, _models.N_INPUTS)
    with pytest.raises(InvalidInputError, match="pool='mean'"):
        gp.extract(model, X, ["proj"], device="cpu")          # 3-D output and no pool
    assert model.training and model.proj.training
    assert all(not m._forward_hooks for m in model.modules())


def test_depth_order_is_recorded():
    out = gp.extract(_models.make_model(), _models.make_data(), ["head", "encoder.2", "encoder.0"], device="cpu")
    assert {name: emb.meta["call_index"] for name, emb in out.items()} == {"encoder.0": 0, "encoder.2": 1, "head": 2}


@pytest.mark.parametrize("pool, manual", [
    ("mean", lambda h: h.mean(dim=1)),
    ("cls", lambda h: h[:, 0]),
    ("flatten", lambda h: h.reshape(len(h), -1)),
    (lambda h: h.amax(dim=1), lambda h: h.amax(dim=1)),
])
def test_pooling_a_token_output_matches_manual_pooling(pool, manual):
    model = _models.make_tokens_model()
    X = torch.randn(10, 5, _models.N_INPUTS)
    out = gp.extract(model, X, ["proj"], pool=pool, batch_size=4, device="cpu")["proj"]
    with torch.no_grad():
        expected = manual(model.proj(X))
    assert torch.equal(as_tensor(out), expected)
    assert out.meta["output_shape"] == [5, 5] or not isinstance(pool, str)


def test_mean_pool_of_a_conv_map_is_global_average_pooling():
    model = _models.make_tokens_model()
    X = torch.randn(6, 5, _models.N_INPUTS)
    out = gp.extract(model, X, ["conv"], pool="mean", device="cpu")["conv"]
    with torch.no_grad():
        grid = model.conv(model.proj(X)[:, :4, :4].unsqueeze(1))
    assert grid.shape == (6, 4, 3, 3)
    assert torch.equal(as_tensor(out), grid.mean(dim=(2, 3)))
    assert out.meta["pool"] == "mean" and out.meta["pooled_axes"] == [2, 3] and out.meta["output_shape"] == [4, 3, 3]


def test_pooling_errors_name_the_options():
    model, X = _models.make_tokens_model(), torch.randn(6, 5, _models.N_INPUTS)
    with pytest.raises(InvalidInputError, match=r"\(6, 4, 3, 3\).*pool='mean'.*'flatten'"):
        gp.extract(model, X, ["conv"], device="cpu")
    with pytest.raises(InvalidInputError, match="3-D only|first token"):
        gp.extract(model, X, ["conv"], pool="cls", device="cpu")
    with pytest.raises(InvalidInputError, match="must return a 2-D tensor"):
        gp.extract(model, X, ["proj"], pool=lambda h: h, device="cpu")
    with pytest.raises(InvalidInputError, match="pool: got 'max'"):
        gp.extract(model, X, ["proj"], pool="max", device="cpu")


def test_tuple_outputs_give_their_first_element():
    model, X = _models.make_tokens_model(), torch.randn(6, 5, _models.N_INPUTS)
    out = gp.extract(model, X, ["lstm"], pool="cls", device="cpu")["lstm"]
    with torch.no_grad():
        expected = model.lstm(model.proj(X))[0][:, 0]
    assert torch.equal(as_tensor(out), expected)
    assert out.meta["output_selected"] == "output[0]"


def test_mapping_outputs_give_last_hidden_state_or_their_only_tensor():
    class DictOut(nn.Module):
        def __init__(self, keys):
            super().__init__()
            self.keys = keys

        def forward(self, x):
            return {k: x * (i + 2) for i, k in enumerate(self.keys)} | {"n": 3}

    X = torch.randn(5, 3)
    rows = gp.extract(nn.Sequential(DictOut(["pooler", "last_hidden_state"])), X, ["0"], device="cpu")["0"]
    assert torch.equal(as_tensor(rows), X * 3)
    rows = gp.extract(nn.Sequential(DictOut(["only"])), X, ["0"], device="cpu")["0"]
    assert torch.equal(as_tensor(rows), X * 2)
    with pytest.raises(InvalidInputError, match=r"\['a', 'b'\]"):
        gp.extract(nn.Sequential(DictOut(["a", "b"])), X, ["0"], device="cpu")


def test_max_samples_cuts_the_last_batch():
    X, y = _models.make_tensors()
    out = gp.extract(_models.make_model(), _models.make_data(), ["head"], max_samples=50, device="cpu")["head"]
    _, _, head = manual_encoder_outputs(_models.make_model(), X)
    assert out.n_samples == 50
    assert torch.equal(as_tensor(out), head[:50])
    assert out.labels.tolist() == y[:50].tolist()


def test_features_go_to_memmap_files_above_the_budget(tmp_path):
    X, y = _models.make_tensors()
    first, encoded, head = manual_encoder_outputs(_models.make_model(), X)
    # 120 samples announced by the loader: 120*(16+8)*4 bytes do not fit 3 KiB
    out = gp.extract(_models.make_model(), _models.make_data(), ["encoder.0", "encoder"], device="cpu",
                     memory_bytes=3 * 1024, memmap_dir=tmp_path)
    for name, expected in (("encoder.0", first), ("encoder", encoded)):
        assert isinstance(out[name].X, np.memmap)
        assert torch.equal(as_tensor(out[name]), expected)
        on_disk = np.load(tmp_path / f"{name}.npy")
        assert np.array_equal(on_disk, expected.numpy())
        assert out[name].meta["storage"] == "memmap"
    assert not list(tmp_path.glob("*.partial"))


def test_with_a_known_size_only_the_layers_that_do_not_fit_go_to_files(tmp_path):
    X, _ = _models.make_tensors()
    first, encoded, _ = manual_encoder_outputs(_models.make_model(), X)
    # 120 samples: encoder.0 needs 120*16*4 = 7680 bytes, encoder 120*8*4 = 3840 bytes
    out = gp.extract(_models.make_model(), _models.make_data(), ["encoder", "encoder.0"], device="cpu",
                     memory_bytes=3840, memmap_dir=tmp_path)
    assert isinstance(out["encoder.0"].X, np.memmap) and not isinstance(out["encoder"].X, np.memmap)
    assert torch.equal(as_tensor(out["encoder.0"]), first) and torch.equal(as_tensor(out["encoder"]), encoded)
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.0.npy"]


def test_with_an_unknown_size_features_spill_once_the_budget_is_passed(tmp_path):
    X, y = _models.make_tensors()
    first, encoded, _ = manual_encoder_outputs(_models.make_model(), X)
    batches = [(X[i:i + 32], y[i:i + 32]) for i in range(0, len(X), 32)]   # a list: no length known upfront
    # 3 KiB: the first batch (32*(16+8)*4 = 3 KiB) stays in memory, the second one crosses the budget
    out = gp.extract(_models.make_model(), batches, ["encoder.0", "encoder"], device="cpu", memory_bytes=3 * 1024,
                     memmap_dir=tmp_path)
    for name, expected in (("encoder.0", first), ("encoder", encoded)):
        assert isinstance(out[name].X, np.memmap)
        assert torch.equal(as_tensor(out[name]), expected)
    # all 120 rows take 120*(16+8)*4 = 11,520 bytes: a 12 KiB budget keeps them in memory
    out = gp.extract(_models.make_model(), batches, ["encoder.0", "encoder"], device="cpu", memory_bytes=12 * 1024)
    assert not isinstance(out["encoder"].X, np.memmap) and torch.equal(as_tensor(out["encoder"]), encoded)


def test_a_wrong_announced_length_still_gives_every_row():
    X, y = _models.make_tensors()
    _, _, head = manual_encoder_outputs(_models.make_model(), X)

    class Stream(torch.utils.data.IterableDataset):
        def __len__(self):
            return 10                                       # wrong on purpose

        def __iter__(self):
            return iter(zip(X, y))

    out = gp.extract(_models.make_model(), Stream(), ["head"], batch_size=16, device="cpu")["head"]
    assert torch.equal(as_tensor(out), head)
    out = gp.extract(_models.make_model(), X, ["head"], max_samples=1000, device="cpu")["head"]
    assert out.n_samples == 120 and torch.equal(as_tensor(out), head)


def test_temporary_memmap_files_are_removed_but_stay_readable(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    X, _ = _models.make_tensors()
    out = gp.extract(_models.make_model(), _models.make_data(), ["head"], device="cpu", memory_bytes=1)["head"]
    _, _, head = manual_encoder_outputs(_models.make_model(), X)
    assert isinstance(out.X, np.memmap)
    assert torch.equal(as_tensor(out), head)
    assert list(tmp_path.iterdir()) == []
    assert out.meta["storage"] == "memmap (temporary file)"


def test_below_the_budget_features_stay_in_memory():
    out = gp.extract(_models.make_model(), _models.make_data(), ["head"], device="cpu")["head"]
    assert not isinstance(out.X, np.memmap) and out.meta["storage"] == "memory"


def test_memmap_dir_must_exist(tmp_path):
    with pytest.raises(OutputError, match="not an existing folder"):
        gp.extract(_models.make_model(), _models.make_data(), ["head"], memmap_dir=tmp_path / "nope")


def test_unknown_layer_lists_close_matches():
    with pytest.raises(InvalidInputError, match=r"'encoder\.9'.*close matches: \[.*'encoder\.0'"):
        gp.extract(_models.make_model(), _models.make_data(), ["encoder.9"])
    with pytest.raises(InvalidInputError, match="repeated"):
        gp.extract(_models.make_model(), _models.make_data(), ["head", "head"])


def test_a_module_that_runs_twice_or_never_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.block(self.block(x))

    with pytest.raises(InvalidInputError, match="more than once"):
        gp.extract(Twice(), torch.randn(4, 3), ["block"], device="cpu")
    with pytest.raises(InvalidInputError, match=r"\['unused'\] did not run"):
        gp.extract(Twice(), torch.randn(4, 3), ["unused"], device="cpu")


@pytest.mark.parametrize("kind", ["tensor", "array", "dataset", "list_of_pairs", "mapping_inputs"])
def test_data_forms(kind):
    X, y = _models.make_tensors()
    model = _models.make_model()
    _, _, head = manual_encoder_outputs(_models.make_model(), X)
    if kind == "tensor":
        data = X
    elif kind == "array":
        data = X.numpy()
    elif kind == "dataset":
        data = TensorDataset(X, y)
    elif kind == "list_of_pairs":
        data = [(X[i:i + 50], y[i:i + 50].tolist()) for i in range(0, len(X), 50)]
    else:
        class Keyword(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = model

            def forward(self, *, features):
                return self.net(features)

        model = Keyword()
        data = [({"features": X[i:i + 40]}, y[i:i + 40]) for i in range(0, len(X), 40)]
    layer = "net.head" if kind == "mapping_inputs" else "head"
    out = gp.extract(model, data, [layer], batch_size=25, device="cpu")[layer]
    assert torch.equal(as_tensor(out), head)
    labelled = kind in ("dataset", "list_of_pairs", "mapping_inputs")
    assert (out.labels is not None) == labelled
    if labelled:
        assert out.labels.tolist() == y.tolist()


def test_bad_batches_are_refused():
    X, y = _models.make_tensors()
    with pytest.raises(InvalidInputError, match="3 items"):
        gp.extract(_models.make_model(), [(X, y, y)], ["head"], device="cpu")
    with pytest.raises(InvalidInputError, match="some batches have labels"):
        gp.extract(_models.make_model(), [(X[:10], y[:10]), X[10:20]], ["head"], device="cpu")
    with pytest.raises(InvalidInputError, match="10 samples but 9 labels"):
        gp.extract(_models.make_model(), [(X[:10], y[:9])], ["head"], device="cpu")
    with pytest.raises(InvalidInputError, match="empty"):
        gp.extract(_models.make_model(), DataLoader(TensorDataset(X[:0], y[:0])), ["head"], device="cpu")
    with pytest.raises(InvalidInputError, match="got int"):
        gp.extract(_models.make_model(), 3, ["head"], device="cpu")


def test_width_change_between_batches_is_refused():
    model = _models.make_tokens_model()
    batches = [torch.randn(4, 5, _models.N_INPUTS), torch.randn(4, 6, _models.N_INPUTS)]
    with pytest.raises(InvalidInputError, match="25 before"):
        gp.extract(model, batches, ["proj"], pool="flatten", device="cpu")


def test_bfloat16_outputs_become_float32():
    model = nn.Sequential(nn.Linear(4, 3)).to(torch.bfloat16)
    X = torch.randn(6, 4, dtype=torch.bfloat16)
    out = gp.extract(model, X, ["0"], device="cpu")["0"]
    with torch.no_grad():
        expected = model(X).float()
    assert out.X.dtype == np.float32 and torch.equal(as_tensor(out), expected)


@pytest.mark.gpu
def test_cuda_extraction_matches_cpu_and_the_model_goes_back():
    X, _ = _models.make_tensors()
    model = _models.make_model()
    out = gp.extract(model, _models.make_data(), ["head"], device="cuda")["head"]
    _, _, head = manual_encoder_outputs(_models.make_model(), X)
    assert next(model.parameters()).device.type == "cpu"
    torch.testing.assert_close(as_tensor(out), head, rtol=1e-4, atol=1e-5)


def test_no_temporary_file_is_left_after_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    X, y = _models.make_tensors()
    with pytest.raises(gp.InvalidEmbeddingsError, match="at least 2 rows"):
        gp.extract(_models.make_model(), X[:1], ["head"], device="cpu", memory_bytes=1)
    with pytest.raises(InvalidInputError, match="some batches have labels"):
        gp.extract(_models.make_model(), [(X[:60], y[:60]), X[60:]], ["head"], device="cpu", memory_bytes=1)
    assert list(tmp_path.iterdir()) == []

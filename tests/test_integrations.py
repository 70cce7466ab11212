"""Framework adapters with real trainers: Lightning (module hook and returned dict) and Hugging Face."""

import warnings

import numpy as np
import pytest
import torch

from geometry_probe.monitor import CollapseMonitor

pl = pytest.importorskip("lightning.pytorch")


def naive_mean_cosine(Z):
    """Mean cosine over all pairs i != j, float64, written out."""
    U = Z.astype(np.float64) / np.linalg.norm(Z.astype(np.float64), axis=1, keepdims=True)
    G = U @ U.T
    n = len(U)
    return (G.sum() - np.trace(G)) / (n * (n - 1))


class Encoder(pl.LightningModule):
    """An encoder and a head; ``training_step`` returns the loss only (or a dict when asked)."""

    def __init__(self, return_dict=False, fuse_from=None):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = torch.nn.Linear(8, 16)
        self.head = torch.nn.Linear(16, 1)
        self.return_dict, self.fuse_from = return_dict, fuse_from
        self.logged = {}

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        z = self.encoder(x)
        if self.fuse_from is not None and batch_idx >= self.fuse_from:
            z = z[:, :1] * torch.ones(1, 16) + 0 * z         # the embeddings fuse onto one line
        loss = self.head(z).pow(2).mean()
        return {"loss": loss, "embeddings": z.detach()} if self.return_dict else loss

    def log_dict(self, values, *args, **kwargs):
        self.logged.update(values)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)    # fixed weights: the test can recompute the outputs


def fit(module, callback, data):
    trainer = pl.Trainer(max_epochs=1, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=32))
    return trainer


def test_lightning_module_hook_captures_the_named_submodule():
    """GeometryCallback(module="encoder") with a training_step that returns only the loss: each window holds
    exactly the encoder's outputs of its steps (mean cosine = a float64 pair mean over those rows)."""
    from geometry_probe.integrations.lightning import GeometryCallback

    data = torch.randn(32 * 8, 8, generator=torch.Generator().manual_seed(1))
    module = Encoder()
    callback = GeometryCallback(CollapseMonitor(every_n_steps=4, on_collapse="ignore", overhead_budget=None),
                                module="encoder")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)           # nothing-captured must not fire
        fit(module, callback, data)
    history = callback.monitor.history
    assert [s["step"] for s in history] == [4, 8]
    with torch.no_grad():
        second_window = module.encoder(data[128:]).numpy()
    assert history[1]["scalars"]["window/n_samples"] == 128
    assert history[1]["scalars"]["window/mean_cosine"] == pytest.approx(naive_mean_cosine(second_window), abs=1e-6)
    assert "geometry/window/mean_cosine" in module.logged
    assert not module.encoder._forward_hooks                     # removed when fitting ends


def test_lightning_returned_dict_path_still_works_and_stops_on_collapse():
    from geometry_probe.integrations.lightning import GeometryCallback

    module = Encoder(return_dict=True, fuse_from=4)
    callback = GeometryCallback(CollapseMonitor(every_n_steps=4, on_collapse="ignore"), stop_on_collapse=True)
    trainer = fit(module, callback, torch.randn(32 * 12, 8, generator=torch.Generator().manual_seed(2)))
    assert "geometry/buffer/effective_rank" in module.logged
    assert trainer.global_step == 8                              # stopped at the snapshot that failed
    assert "over_fusion" in [a["name"] for a in callback.monitor.alerts]


def test_lightning_warns_once_when_nothing_is_captured():
    """A training_step returning only the loss, without module=: one RuntimeWarning saying how to fix it."""
    from geometry_probe.integrations.lightning import GeometryCallback

    callback = GeometryCallback(CollapseMonitor(every_n_steps=2, on_collapse="ignore"))
    with pytest.warns(RuntimeWarning) as record:
        fit(Encoder(), callback, torch.randn(32 * 4, 8))
    ours = [w for w in record if "GeometryCallback" in str(w.message)]
    assert len(ours) == 1 and "module='encoder'" in str(ours[0].message)
    assert callback.monitor.history == []


def test_lightning_unknown_module_name_is_one_clear_error():
    from geometry_probe.exceptions import InvalidInputError
    from geometry_probe.integrations.lightning import GeometryCallback

    with pytest.raises(InvalidInputError, match="'encodr' is not a submodule"):
        fit(Encoder(), GeometryCallback(module="encodr"), torch.randn(64, 8))


def test_huggingface_callback_watches_a_module():
    transformers = pytest.importorskip("transformers")
    from geometry_probe.integrations.huggingface import GeometryTrainerCallback

    encoder = torch.nn.Linear(8, 16, bias=False)   # rows of a rank-1 input fall on a line through 0
    callback = GeometryTrainerCallback(encoder, CollapseMonitor(every_n_steps=2, on_collapse="ignore"),
                                       stop_on_collapse=True)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    encoder.train()
    for step in range(4):
        x = torch.randn(32, 8) if step < 2 else torch.randn(32, 1).repeat(1, 8)
        encoder(x)
        state.global_step = step + 1
        callback.on_step_end(None, state, control)
    encoder.eval()
    encoder(torch.randn(4, 8))                                # eval passes are ignored
    logged = [entry for entry in state.log_history if "geometry/window/mean_cosine" in entry]
    assert [entry["step"] for entry in logged] == [2, 4]
    assert control.should_training_stop
    callback.on_train_end(None, state, control)
    assert not encoder._forward_hooks


class _Regressor(torch.nn.Module):
    """A tiny model the HF Trainer can train: returns {"loss"} from inputs and labels."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = torch.nn.Linear(8, 16)
        self.head = torch.nn.Linear(16, 1)

    def forward(self, x, labels=None):
        out = self.head(torch.relu(self.encoder(x))).squeeze(-1)
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}


def test_huggingface_trainer_run_with_a_module_name(tmp_path):
    """A real transformers.Trainer (CPU, 8 steps): module="encoder" is hooked at train start and each
    optimizer step's rows (batch 16) reach the monitor."""
    transformers = pytest.importorskip("transformers")
    from geometry_probe.integrations.huggingface import GeometryTrainerCallback

    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(128, 8, generator=g), torch.randn(128, generator=g)
    dataset = [{"x": X[i], "labels": y[i]} for i in range(len(X))]
    monitor = CollapseMonitor(every_n_steps=4, on_collapse="ignore")
    callback = GeometryTrainerCallback("encoder", monitor)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=8,
                                          report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
                                          disable_tqdm=True, dataloader_num_workers=0)
    model = _Regressor()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, callbacks=[callback])
    trainer.train()
    assert [s["step"] for s in monitor.history] == [4, 8]
    assert monitor.history[0]["scalars"]["window/n_samples"] == 64
    assert not model.encoder._forward_hooks

"""Framework adapters: Lightning logs snapshot scalars and stops on collapse; HF callback hooks a module."""

import pytest
import torch

from geometry_probe.monitor import CollapseMonitor


def test_lightning_callback_logs_and_stops_on_collapse():
    pl = pytest.importorskip("lightning.pytorch")
    from geometry_probe.integrations.lightning import GeometryCallback

    class Fusing(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(8, 16)
            self.logged = {}

        def training_step(self, batch, batch_idx):
            (x,) = batch
            z = self.layer(x)
            if batch_idx >= 4:                               # the embeddings fuse onto one line
                z = z[:, :1] * torch.ones(1, 16) + 0 * z
            return {"loss": z.pow(2).mean(), "embeddings": z.detach()}

        def log_dict(self, values, *args, **kwargs):
            self.logged.update(values)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64 * 12, 8)), batch_size=64)
    module = Fusing()
    callback = GeometryCallback(CollapseMonitor(every_n_steps=4, on_collapse="ignore"), stop_on_collapse=True)
    trainer = pl.Trainer(max_epochs=1, callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, data)
    assert "geometry/buffer/effective_rank" in module.logged
    assert trainer.global_step == 8                           # stopped at the snapshot that failed
    # exactly one line with nothing left off it: fused geometry, and (label-free) no information left
    assert [a["name"] for a in callback.monitor.alerts] == ["over_fusion", "information_loss"]


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

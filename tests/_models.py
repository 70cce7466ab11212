"""Small torch models and data for the extraction tests; importable as ``tests/_models.py:NAME``."""

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

N_SAMPLES, N_INPUTS, N_CLASSES = 120, 6, 3


class Net(nn.Module):
    """An MLP with dropout and batch norm (so eval mode matters) and an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(N_INPUTS, 16), nn.ReLU(inplace=True), nn.Linear(16, 8),
                                     nn.BatchNorm1d(8), nn.ReLU())
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(8, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encoder(x)))


class Tokens(nn.Module):
    """(batch, tokens, inputs) → (batch, tokens, 5); ``conv`` gives (batch, 4, 3, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(N_INPUTS, 5)
        self.conv = nn.Conv2d(1, 4, kernel_size=2)
        self.lstm = nn.LSTM(5, 7, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)                                        # (B, T, 5)
        grid = self.conv(h[:, :4, :4].unsqueeze(1))             # (B, 4, 3, 3)
        out, _ = self.lstm(h)                                   # (B, T, 7)
        return out.mean(1) + grid.mean((1, 2, 3)).unsqueeze(1)


def make_model() -> Net:
    torch.manual_seed(1)
    return Net()


def make_tokens_model() -> Tokens:
    torch.manual_seed(2)
    return Tokens()


def make_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(N_SAMPLES) % N_CLASSES
    centres = torch.randn(N_CLASSES, N_INPUTS, generator=generator) * 2
    X = centres[y] + torch.randn(N_SAMPLES, N_INPUTS, generator=generator)
    return X, y


def make_data() -> DataLoader:
    X, y = make_tensors()
    return DataLoader(TensorDataset(X, y), batch_size=32, shuffle=False)


def make_unlabelled_data() -> torch.Tensor:
    return make_tensors()[0]


def train_and_save(folder: Path, steps: tuple[int, ...] = (0, 5, 10)) -> dict[int, Path]:
    """Train :class:`Net` with SGD, saving its state_dict at each of ``steps`` (``step_<k>.pt``)."""
    model = make_model()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    X, y = make_tensors()
    saved = {}
    for step in range(max(steps) + 1):
        if step in steps:
            saved[step] = folder / f"step_{step}.pt"
            torch.save(model.state_dict(), saved[step])
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimiser.step()
    return saved

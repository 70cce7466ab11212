"""Options shared by the commands that start from a model: --model, --data, --checkpoint, --layer, --pool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from geometry_probe.exceptions import InvalidInputError
from geometry_probe.factories import call_factory

if TYPE_CHECKING:
    from geometry_probe.checkpoints import CheckpointInfo

ModelOpt = Annotated[str, typer.Option(
    "--model", "-m", help="Model factory, PKG.MODULE:FACTORY or path/to/file.py:FACTORY, called with no arguments.",
    show_default=False)]
_DATA_HELP = ("Data factory (same forms) returning a DataLoader, Dataset, tensor or iterable of x or (x, y) batches; "
              "y becomes the labels. Keep it unshuffled.")
DataOpt = Annotated[Optional[str], typer.Option("--data", help=_DATA_HELP, show_default=False)]
RequiredDataOpt = Annotated[str, typer.Option("--data", help=_DATA_HELP, show_default=False)]
CheckpointOpt = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-c", help="Weights to load into the model: a state_dict .pt/.pth, a Lightning .ckpt, a dict "
                               "with 'model', or .safetensors (never unpickled).")]
CheckpointPrefixOpt = Annotated[Optional[str], typer.Option(
    "--checkpoint-prefix", help="Strip this key prefix from the checkpoint (default: detected from the model's keys).")]
LayerOpt = Annotated[Optional[list[str]], typer.Option(
    "--layer", help="Module name as in model.named_modules(), e.g. encoder.4 (repeatable). "
                    "`geoprobe layers --model ...` lists them.")]
PoolOpt = Annotated[Optional[str], typer.Option(
    help="How outputs with more than 2 dimensions become one row per sample: mean (tokens, or spatial axes of "
         "(batch, channels, H, W)), cls (first token) or flatten. Required for such outputs.")]
MaxSamplesOpt = Annotated[Optional[int], typer.Option(min=1, help="Stop after this many samples.")]
ExtractBatchSizeOpt = Annotated[int, typer.Option(
    "--batch-size", min=1, help="Batch size when the data factory returns a Dataset or a tensor.")]


def build_model(spec: str, checkpoint: Optional[Path], prefix: Optional[str]) -> tuple[Any, Optional[CheckpointInfo]]:
    """Call the model factory, then load ``checkpoint`` into the model when given."""
    from torch import nn

    from geometry_probe.checkpoints import load_checkpoint

    model = call_factory(spec, what="--model")
    if not isinstance(model, nn.Module):
        raise InvalidInputError(f"--model: {spec} returned a {type(model).__name__}, not a torch.nn.Module.")
    info = load_checkpoint(model, checkpoint, prefix=prefix) if checkpoint is not None else None
    return model, info


def build_data(spec: str) -> Any:
    """Call the data factory."""
    return call_factory(spec, what="--data")

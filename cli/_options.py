"""Option definitions written once and reused by the commands."""

from pathlib import Path
from typing import Annotated, Optional

import typer

EmbeddingsArg = Annotated[Path, typer.Argument(
    help="Embeddings file (.npy .npz .pt/.pth .safetensors .csv/.tsv/.parquet .h5), or a folder or quoted glob "
         "of shards.", show_default=False)]
LabelsOpt = Annotated[Optional[str], typer.Option(
    "--labels", "-l", help="Labels: a .npy/.txt/.csv file, or the name of an array inside the embeddings file.")]
KeyOpt = Annotated[Optional[str], typer.Option(
    "--key", "-k", help="Which array of a container file (.npz/.pt/.safetensors/.h5) holds the embeddings.")]
AnalyzersOpt = Annotated[Optional[str], typer.Option(
    "--analyzers", "-a", help="Comma-separated analyzers (default: all that apply). See `geoprobe list`.")]
DeviceOpt = Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda' or 'cuda:N'.")]
BatchSizeOpt = Annotated[Optional[int], typer.Option(
    min=1, help="Rows per batch sent to the device (default: from a 128 MB budget).")]
PrecisionOpt = Annotated[str, typer.Option(
    help="Streaming statistics: float64 (exact, default) or float32 (about 1.5x faster on CPU; resolves singular "
    "values only down to ~2e-4 of the largest: effective rank of rank-5 data reads ~2% high).")]
PairwisePrecisionOpt = Annotated[str, typer.Option(
    "--pairwise-precision", help="Pairwise tile GEMMs (contrastive, knn): float32, bfloat16 (cosines to ~4e-3; "
    "faster only with bf16 matrix instructions: GPUs, AVX512-BF16/AMX CPUs) or tf32 (CUDA; cosines to ~1e-3).")]
SeedOpt = Annotated[int, typer.Option(help="Seed for every subsample.")]
JsonOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", "--json", help="Write the results as JSON to this .json file, or to stdout with '-' (the tables "
    "then go to stderr). --json is the old name.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print neither the input line, the progress bars nor the tables (the progress bars are also "
    "left out when stderr is not a terminal).")]
ClassifierOpt = Annotated[Optional[Path], typer.Option(
    "--classifier", help="Linear classifier for NC3/NC4 (neural_collapse): a (C, D) .npy, or a .npz/.pt/.safetensors "
    "with 'weight' and optional 'bias' (e.g. a saved nn.Linear state dict); rows in sorted-label order.")]
ClassifierKeyOpt = Annotated[Optional[str], typer.Option(
    "--classifier-key", help="Which weight of a --classifier file with several, e.g. 'fc' for fc.weight/fc.bias.")]
CoarseLabelsOpt = Annotated[Optional[str], typer.Option(
    "--coarse-labels", help="Super-class labels (file or key); with --labels they enable the class_collapse finding.")]
FailOnOpt = Annotated[Optional[str], typer.Option(
    "--fail-on", help="'collapse': exit 1 when an over-fusion, dimensional or class collapse finding fails.")]
PairsOpt = Annotated[Optional[str], typer.Option(
    "--pairs", help="Positive pairs for alignment: an (M, 2) array of row indices (.npy, or a key in the container).")]
ViewsOpt = Annotated[Optional[Path], typer.Option(
    "--views", help="A second view, aligned row by row with the embeddings (row i is the positive of row i).")]
GroupsOpt = Annotated[Optional[str], typer.Option(
    "--groups", help="Group ids (file or key): all pairs within a group are positives.")]
ExactOpt = Annotated[bool, typer.Option(
    "--exact", help="All pairs for the pairwise statistics and kNN lists of all rows, however large N "
    "(default: exact up to 5e8 pairs, sampled estimates with standard errors above).")]
KnnKOpt = Annotated[int, typer.Option("--knn-k", min=1, help="Neighbours for kNN accuracy and hubness.")]
KnnTemperatureOpt = Annotated[float, typer.Option("--knn-temperature", min=1e-6, help="Temperature of the kNN vote.")]
HeaderOpt = Annotated[Optional[bool], typer.Option(
    "--header/--no-header", help="CSV/TSV: the first row names the columns, or is data (default: data when it holds "
    "only numbers).", show_default=False)]

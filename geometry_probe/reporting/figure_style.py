"""The print style every static figure shares: size presets, fonts, palette, literal text, layout.

A figure is drawn for one of two widths of a two-column paper, :data:`WIDTHS`: ``"column"``
(3.25 in) or ``"full"`` (6.75 in, the text width). Text is 8 pt (titles, axis labels) or 7 pt
(ticks, legends), never smaller, at that printed size; PNGs are written at :data:`DEFAULT_DPI`
(300) and PDF/SVG keep text as text, PDF with TrueType (Type 42) fonts embedded. Colours are
Okabe & Ito's colour-blind-safe palette (Okabe & Ito 2008, "Color Universal Design"), with a
line style per series so that a grey-scale print still tells them apart. Legends go below the
axes, off the data; :func:`fit_text` wraps a title that would run past its axes, measured with
the renderer, not guessed.

Text that comes from the data (class, layer, run and finding names) goes through :func:`label`:
drawn literally, never parsed as mathtext. Text that is ours may use mathtext (``$S^{63}$``).
"""

from __future__ import annotations

import io
import math
import textwrap
import unicodedata
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

from geometry_probe._interrupts import deferred
from geometry_probe.exceptions import InvalidInputError

WIDTHS = {"column": 3.25, "full": 6.75}
SIZES = tuple(WIDTHS)
DEFAULT_DPI = 300
MAX_DPI = 2400
FONT_PT = 8.0
SMALL_PT = 7.0
LABEL_CHARACTERS = 40
TICK_CHARACTERS = 20
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: Okabe–Ito without yellow (too pale for a thin line on white), for lines drawn over data.
LINE_COLOURS = ("#D55E00", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000", "#0072B2")
LINESTYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3)), (0, (3, 1, 1, 1)), (0, (2, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

_Function = TypeVar("_Function", bound=Callable[..., Any])


def rc() -> dict[str, Any]:
    """The matplotlib settings every figure is drawn and saved with."""
    from cycler import cycler

    return {"font.family": "DejaVu Sans", "mathtext.fontset": "dejavusans", "text.usetex": False,
            "font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT,
            "xtick.labelsize": SMALL_PT, "ytick.labelsize": SMALL_PT, "legend.fontsize": SMALL_PT,
            "legend.title_fontsize": SMALL_PT, "figure.titlesize": FONT_PT, "axes.linewidth": 0.6,
            "lines.linewidth": 1.2, "lines.markersize": 3.5, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
            "axes.prop_cycle": cycler(color=OKABE_ITO), "axes.spines.top": False, "axes.spines.right": False,
            "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "savefig.dpi": DEFAULT_DPI,
            "image.cmap": "cividis"}


def styled(function: _Function) -> _Function:
    """Run a figure function under :func:`rc` (matplotlib reads most settings as artists are made),
    its ``size`` checked first, then :func:`finish` the figure."""
    @wraps(function)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        from matplotlib import rc_context

        width_of(kwargs.get("size", "column"))
        with rc_context(rc()):
            figure = function(*args, **kwargs)
            finish(figure)
        return figure
    return drawn  # type: ignore[return-value]


def width_of(size: str) -> float:
    """The width in inches of the preset ``size`` (:data:`WIDTHS`).

    Raises
    ------
    InvalidInputError
        ``size`` is not a preset.
    """
    if size not in WIDTHS:
        raise InvalidInputError(f"size: got {size!r}; choose one of {list(SIZES)} (3.25 or 6.75 in wide).")
    return WIDTHS[size]


def check_dpi(dpi: Any) -> int:
    """``dpi`` as an int from 1 to :data:`MAX_DPI`.

    Raises
    ------
    InvalidInputError
        Not a whole number in that range.
    """
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not float(dpi).is_integer() \
            or not 1 <= dpi <= MAX_DPI:
        raise InvalidInputError(f"dpi: got {dpi!r}; give a whole number from 1 to {MAX_DPI} (300 for print).")
    return int(dpi)


def new_figure(size: str, height: float, *, layout: str = "constrained") -> Any:
    """An empty figure ``WIDTHS[size]`` wide and ``height`` inches high, its axes placed by
    ``layout`` ("constrained"; "compressed" for fixed-aspect axes such as heatmaps)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_of(size), height), layout=layout)
    figure.get_layout_engine().set(w_pad=2 / 72, h_pad=2 / 72, wspace=0.04, hspace=0.04)
    FigureCanvasAgg(figure)
    return figure


def label(text: Any, limit: int = LABEL_CHARACTERS) -> str:
    """User text (a class, layer, run or finding name) as matplotlib must be given it to draw it as
    written: control characters as escapes (``\\n``), at most ``limit`` characters (the rest as
    "..."), and ``$`` escaped (:func:`literal`).

    Examples
    --------
    >>> label("a\\nb"), label("x" * 50)[-5:], label(3), label("$x_{1$"), label("abcdefgh", limit=6)
    ('a\\\\nb', 'xx...', '3', '\\\\$x_{1\\\\$', 'abc...')
    """
    text = "".join(repr(ch)[1:-1] if unicodedata.category(ch) == "Cc" else ch for ch in str(text))
    return literal(text if len(text) <= limit else text[:limit - 3] + "...")


def literal(text: str) -> str:
    r"""``text`` with every ``$`` escaped as ``\$``: matplotlib then draws it as written instead of
    parsing ``$...$`` as mathtext (a ``\$`` in ``text`` comes back as ``\$`` too).

    Examples
    --------
    >>> print(literal("$x_{1$ costs 50%_$"))
    \$x_{1\$ costs 50%_\$
    """
    return text.replace("$", r"\$")


def series_style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of the ``index``-th overlaid series (run, layer, finding):
    seven Okabe–Ito colours (no yellow) against eight dash patterns (solid first), so that no two
    of the first 56 series share both, and consecutive ones differ in both and in marker.

    Examples
    --------
    >>> [series_style(i)["color"] for i in range(3)]
    ['#0072B2', '#E69F00', '#009E73']
    """
    colours = OKABE_ITO[:6] + OKABE_ITO[7:]              # no yellow
    styles = ("-",) + LINESTYLES[:7]
    return {"color": colours[index % len(colours)], "ls": styles[index % len(styles)],
            "marker": MARKERS[index % len(MARKERS)]}


def marker_style(index: int) -> dict[str, Any]:
    """The ``index``-th line drawn over data (an onset, a threshold): colour and dash both differ
    from the previous ones (seven colours against eight dash patterns, never a solid line: no two
    of the first 56 share both).

    Examples
    --------
    >>> [(marker_style(i)["color"], marker_style(i)["ls"]) for i in range(2)]
    [('#D55E00', '--'), ('#E69F00', ':')]
    """
    return {"color": LINE_COLOURS[index % len(LINE_COLOURS)],
            "ls": LINESTYLES[index % len(LINESTYLES)]}


def grid(n_panels: int, size: str, *, stacked: int = 3) -> tuple[int, int]:
    """Rows and columns of ``n_panels`` small multiples: up to ``stacked`` stacked in a column,
    more two abreast; up to three abreast at full width.

    Examples
    --------
    >>> grid(3, "column"), grid(5, "column"), grid(5, "column", stacked=8), grid(4, "full")
    ((3, 1), (3, 2), (5, 1), (2, 3))
    """
    if size == "column" and n_panels <= stacked:
        return n_panels, 1
    columns = min(n_panels, 2 if size == "column" else 3)
    return math.ceil(n_panels / columns), columns


def panel_height(size: str) -> float:
    """Height in inches of one small multiple of a :func:`grid`."""
    return 1.3 if size == "column" else 1.8


def whole_steps(ax: Any, steps: Any) -> None:
    """Integer ticks on the x axis of ``ax`` when every one of ``steps`` is a whole number."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    values = np.asarray(steps, dtype=float)
    if values.size and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def legend_columns(labels: Sequence[str], width: float) -> int:
    """How many legend entries fit side by side in ``width`` inches at :data:`SMALL_PT`
    (an estimate; :func:`fit_text` corrects it with the renderer)."""
    longest = max((len(text) for text in labels), default=1)
    entry = (longest * 0.56 * SMALL_PT + 30) / 72          # text, handle and gap, inches
    return max(1, min(len(labels), int(width // entry)))


def legend_below(figure: Any, handles: Sequence[Any], labels: Sequence[str], *, title: str | None = None) -> Any:
    """A figure legend below the axes (off the data), as many columns as fit the width."""
    if not handles:
        return None
    width = figure.get_figwidth()
    return figure.legend(handles, labels, loc="outside lower center", ncols=legend_columns(labels, width),
                         frameon=False, title=title, handlelength=2.4, columnspacing=1.2)


def legend_height(labels: Sequence[str], width: float) -> float:
    """The extra figure height in inches a :func:`legend_below` of ``labels`` takes."""
    if not labels:
        return 0.0
    rows = math.ceil(len(labels) / legend_columns(labels, width))
    return 0.1 + rows * SMALL_PT * 1.45 / 72


def tick_step(n_ticks: int, length: float, fontsize: float = SMALL_PT) -> int:
    """Label every ``step``-th of ``n_ticks`` ticks so that labels ``fontsize`` high do not overlap
    on an axis ``length`` inches long.

    Examples
    --------
    >>> tick_step(10, 2.0), tick_step(100, 2.0)
    (1, 7)
    """
    fits = max(1, int(length * 72 / (fontsize * 1.25)))
    return max(1, math.ceil(n_ticks / fits))


def finish(figure: Any) -> None:
    """Set every axis' tick and offset text to :data:`SMALL_PT`, then :func:`fit_text`."""
    for ax in figure.axes:
        ax.tick_params(labelsize=SMALL_PT)
        for axis in (ax.xaxis, ax.yaxis):
            axis.get_offset_text().set_fontsize(SMALL_PT)
    fit_text(figure)


def fit_text(figure: Any, *, rounds: int = 4) -> None:
    """Wrap titles wider than their axes and axis labels that would run past the figure's edge,
    and drop legend columns until the legend fits; measured with the renderer after layout."""
    renderer = figure.canvas.get_renderer()
    for _ in range(rounds):
        with deferred():                   # as in render(): no signal raised inside the C++ layout solver
            figure.draw_without_rendering()
        changed = False
        for ax in figure.axes:
            box = ax.get_position().transformed(figure.transFigure)
            changed |= _wrap_to(ax.title, min(box.width, _room(ax.title, figure, renderer)), renderer)
            for text in (ax.xaxis.label, ax.yaxis.label):
                changed |= _wrap_to(text, _room(text, figure, renderer), renderer)
        for legend in figure.legends:
            if legend.get_window_extent(renderer).width > figure.bbox.width and legend._ncols > 1:
                legend.set_ncols(legend._ncols - 1)
                changed = True
        if not changed:
            return


def _room(text: Any, figure: Any, renderer: Any) -> float:
    """The widest (horizontal) or tallest (vertical) ``text`` can be, centred where it is, inside the figure."""
    extent = text.get_window_extent(renderer)
    if text.get_rotation() % 180 == 90:
        centre = (extent.y0 + extent.y1) / 2
        return 2 * min(centre - figure.bbox.y0, figure.bbox.y1 - centre) - 2
    centre = (extent.x0 + extent.x1) / 2
    return 2 * min(centre - figure.bbox.x0, figure.bbox.x1 - centre) - 2


def _wrap_to(text: Any, room: float, renderer: Any) -> bool:
    """Re-wrap ``text`` onto more lines when it is wider than ``room`` pixels; whether it changed."""
    content = text.get_text()
    extent = text.get_window_extent(renderer)
    length = extent.height if text.get_rotation() % 180 == 90 else extent.width
    if not content or length <= room:
        return False
    lines = content.split("\n")
    longest = max(len(line) for line in lines)
    characters = max(8, int(longest * room / length * 0.95))
    wrapped = "\n".join(textwrap.fill(line, characters, break_long_words=False) for line in lines)
    if wrapped == content:
        return False
    text.set_text(wrapped)
    return True


def render(figure: Any, fmt: str, *, dpi: int = DEFAULT_DPI, **savefig: Any) -> bytes:
    """``figure`` saved as ``fmt`` in memory, at ``dpi`` (PNG; images inside PDF/SVG), without
    LaTeX whatever the user's matplotlibrc says; vector formats keep text as text (TrueType,
    Type 42, in PDF; ``<text>`` in SVG)."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    with rc_context(rc()), deferred():     # a signal raised inside matplotlib's C++ layout/drawing aborts the process
        figure.savefig(buffer, format=fmt, dpi=check_dpi(dpi), **savefig)
    return buffer.getvalue()


def measure_print(figure: Any, *, dpi: int = DEFAULT_DPI) -> dict[str, Any]:
    """What a figure prints as: its size in inches and in pixels at ``dpi``, the smallest font in
    points among the texts the renderer actually draws, and those that run past the figure's edge.

    Returns
    -------
    dict
        ``width_in``, ``height_in``, ``width_px``, ``height_px``, ``min_font_pt``, ``n_texts``,
        ``clipped`` (the texts, at most 10, that extend beyond the figure).
    """
    from matplotlib import rc_context

    drawn: list[Any] = []
    with rc_context(rc()):
        renderer = figure.canvas.get_renderer()
        draw_text = renderer.draw_text

        def record(gc: Any, x: float, y: float, s: str, prop: Any, angle: float, ismath: Any = False,
                   mtext: Any = None) -> Any:
            if mtext is not None and s:
                drawn.append(mtext)
            return draw_text(gc, x, y, s, prop, angle, ismath, mtext)

        renderer.draw_text = record
        try:
            figure.draw(renderer)
        finally:
            del renderer.draw_text
        box = figure.bbox
        clipped = [text.get_text() for text in drawn
                   if not box.padded(0.5).contains(*text.get_window_extent(renderer).p0)
                   or not box.padded(0.5).contains(*text.get_window_extent(renderer).p1)]
    width, height = figure.get_size_inches()
    return {"width_in": round(float(width), 4), "height_in": round(float(height), 4),
            "width_px": round(width * dpi), "height_px": round(height * dpi),
            "min_font_pt": min((float(text.get_fontsize()) for text in drawn), default=float("nan")),
            "n_texts": len(drawn), "clipped": clipped[:10]}

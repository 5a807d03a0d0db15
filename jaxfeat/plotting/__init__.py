"""Figures users expect, and the panels they are made of.

Each figure function (`spike_phase_diagram`, `local_convergence_figure`, …) draws on a
`matplotlib.figure.Figure` of its own and saves it to `path`: no pyplot state, so importing
jaxfeat never changes a notebook's backend, and figures render without a screen. `width=`
sizes a figure for a paper: `"column"` (3.5 in, one column of a two-column paper), `"page"`
(7.0 in) or inches; the height follows, fonts shrink to at most 0.7× and panels that would be
too narrow side by side are stacked. PDFs embed TrueType fonts, never Type 3.

The panel functions (`spike_count_heatmap`, `singular_value_panel`, `test_error_panel`,
`recovery_panel`, `width_sweep_panel`) draw one panel onto a given matplotlib `ax` (a fresh
figure's when `ax` is None) and return it, to compose figures of one's own:

```python
fig = matplotlib.figure.Figure(figsize=(jf.plotting.figure_width("page"), 2.6))
ax, bx = fig.subplots(1, 2)
jf.plotting.spike_count_heatmap(ds.sel(activation="relu"), ax=ax)
jf.plotting.test_error_panel(ds.sel(activation="relu"), ax=bx)
fig.savefig("spikes.pdf")
```

The figures live in one module per experiment (`spikes`, `equivalence`, `random_features`,
`teacher_student`, `local_convergence`, `gradient_features`, `bench`, `generic`: the fallback
and `draw`) over the shared sizes, fonts and helpers of `_style`; every function is re-exported
here, so `jaxfeat.plotting.<name>` names each of them as before (a function calls its
helpers in its own module: patch a helper there, e.g. `jaxfeat.plotting.spikes._spike_heatmap`).
"""

from ._style import (
    _MAX_ROWS as _MAX_ROWS,
    _MIN_FONT_SCALE as _MIN_FONT_SCALE,
    _MIN_PANEL as _MIN_PANEL,
    _MIN_POINTS as _MIN_POINTS,
    _MIN_WORDY_PANEL as _MIN_WORDY_PANEL,
    _PRINT_PIXELS as _PRINT_PIXELS,
    _SAVE_RC as _SAVE_RC,
    _WIDTH_RANGE as _WIDTH_RANGE,
    _WIDTHS as _WIDTHS,
    _axes_or_new as _axes_or_new,
    _cell_numbers as _cell_numbers,
    _drop_legend as _drop_legend,
    _facets as _facets,
    _fs as _fs,
    _labels as _labels,
    _mean_se as _mean_se,
    _numeric as _numeric,
    _ok as _ok,
    _over as _over,
    _panels as _panels,
    _place as _place,
    _save as _save,
    _seeds_label as _seeds_label,
    _subplots as _subplots,
    _with_axes as _with_axes,
    figure_width as figure_width,
    json_attrs as json_attrs,
)
from .bench import (
    _BENCH_OWN as _BENCH_OWN,
    _bench_panel as _bench_panel,
    _bench_title as _bench_title,
    _sweep_panel as _sweep_panel,
    bench_figure as bench_figure,
)
from .equivalence import (
    _equivalence_setup as _equivalence_setup,
    _errors_vs_alpha_panel as _errors_vs_alpha_panel,
    _gap_vs_n_panel as _gap_vs_n_panel,
    _per_feature_against_alpha as _per_feature_against_alpha,
    _projection_panel as _projection_panel,
    _seed_gap as _seed_gap,
    equivalence_figure as equivalence_figure,
)
from .generic import (
    _generic_panel as _generic_panel,
    _takes_width as _takes_width,
    draw as draw,
    generic_scan as generic_scan,
)
from .gradient_features import (
    _GF_STYLE as _GF_STYLE,
    _GF_X as _GF_X,
    _gap_panel as _gap_panel,
    _gf_axes as _gf_axes,
    _gf_curve_panel as _gf_curve_panel,
    _gf_error_panel as _gf_error_panel,
    _gf_title as _gf_title,
    gradient_features_figure as gradient_features_figure,
    step_one_figure as step_one_figure,
    test_error_heatmap as test_error_heatmap,
)
from .local_convergence import (
    _ANGLE_FLOOR as _ANGLE_FLOOR,
    _FAR_FLOOR as _FAR_FLOOR,
    _WEIGHT_FLOOR as _WEIGHT_FLOOR,
    _far_mass_axes as _far_mass_axes,
    _far_mass_points as _far_mass_points,
    _heat_axes as _heat_axes,
    _loss_row as _loss_row,
    _near_weight_axes as _near_weight_axes,
    _neuron_panels as _neuron_panels,
    _per_seed as _per_seed,
    _recovery_panel as _recovery_panel,
    _stage_loss_axes as _stage_loss_axes,
    _swept as _swept,
    local_convergence_figure as local_convergence_figure,
    neuron_points_figure as neuron_points_figure,
    recovery_heatmap as recovery_heatmap,
    recovery_panel as recovery_panel,
)
from .random_features import (
    ensemble_predictions as ensemble_predictions,
    width_sweep as width_sweep,
    width_sweep_panel as width_sweep_panel,
)
from .spikes import (
    _error_panel as _error_panel,
    _one_spike_facet as _one_spike_facet,
    _predicted_label as _predicted_label,
    _spectra_panel as _spectra_panel,
    _spike_heatmap as _spike_heatmap,
    singular_value_panel as singular_value_panel,
    spike_colour_limits as spike_colour_limits,
    spike_count_heatmap as spike_count_heatmap,
    spike_phase_diagram as spike_phase_diagram,
    test_error_panel as test_error_panel,
)
from .teacher_student import (
    _curves_panel as _curves_panel,
    _final_loss_panel as _final_loss_panel,
    _loss_against_width_panel as _loss_against_width_panel,
    training_curves as training_curves,
)

__all__ = [
    "bench_figure",
    "draw",
    "ensemble_predictions",
    "figure_width",
    "generic_scan",
    "gradient_features_figure",
    "local_convergence_figure",
    "neuron_points_figure",
    "recovery_heatmap",
    "recovery_panel",
    "singular_value_panel",
    "spike_colour_limits",
    "spike_count_heatmap",
    "spike_phase_diagram",
    "step_one_figure",
    "test_error_heatmap",
    "test_error_panel",
    "training_curves",
    "width_sweep",
    "width_sweep_panel",
]

"""Plotly charts for reports: built here (testable, reusable from notebooks), shown by the app.

    python -m training.charts FILE.jsonl     # writes token_lengths.html next to the file
"""

from __future__ import annotations

import plotly.graph_objects as go


def token_histogram(lengths: list[int], context_limit: int | None = None, title: str = "Tokens per example") -> go.Figure:
    """Histogram of example lengths, with the context limit marked when it is within view."""
    figure = go.Figure(go.Histogram(x=lengths, nbinsx=min(40, max(5, len(set(lengths)))), name="examples",
                                    marker_color="#2563eb"))
    if context_limit and lengths and context_limit <= max(lengths) * 1.5:
        figure.add_vline(x=context_limit, line_dash="dash", line_color="#dc2626",
                         annotation_text=f"context limit {context_limit:,}")
    figure.update_layout(title=title, xaxis_title="tokens", yaxis_title="examples", bargap=0.05,
                         height=320, margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return figure


def loss_chart(steps: list[tuple[int, float]], evals: list[tuple[int, float]], total_steps: int | None = None) -> go.Figure:
    """Training loss per step and validation loss at each evaluation, as the run goes."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[s for s, _ in steps], y=[v for _, v in steps], mode="lines", name="training loss",
                                line={"color": "#2563eb"}))
    if evals:
        figure.add_trace(go.Scatter(x=[s for s, _ in evals], y=[v for _, v in evals], mode="lines+markers",
                                    name="validation loss", line={"color": "#dc2626"}))
    figure.update_layout(title="Loss", xaxis_title="step", yaxis_title="loss", height=320,
                         xaxis={"range": [0, total_steps]} if total_steps else {},
                         margin={"l": 40, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return figure


def eval_chart(summary: dict) -> go.Figure:
    """Quality per system (F1, exact match, valid JSON) beside its cost (mean prompt tokens, p50 latency)."""
    from plotly.subplots import make_subplots

    systems = list(summary)
    figure = make_subplots(rows=1, cols=3, subplot_titles=("quality", "mean prompt tokens", "p50 latency (s)"),
                           column_widths=[0.5, 0.25, 0.25])
    colors = ["#2563eb", "#16a34a", "#9333ea"]
    for color, (key, name) in zip(colors, (("f1", "F1"), ("exact_match", "exact match"),
                                           ("valid_json_rate", "valid JSON"))):
        figure.add_trace(go.Bar(x=systems, y=[summary[s].get(key, 0) for s in systems], name=name,
                                marker_color=color), row=1, col=1)
    figure.add_trace(go.Bar(x=systems, y=[summary[s].get("mean_prompt_tokens", 0) for s in systems],
                            marker_color="#f59e0b", showlegend=False), row=1, col=2)
    figure.add_trace(go.Bar(x=systems, y=[summary[s].get("p50_latency_s", 0) for s in systems],
                            marker_color="#dc2626", showlegend=False), row=1, col=3)
    figure.update_yaxes(range=[0, 1], row=1, col=1)
    figure.update_layout(barmode="group", height=360, margin={"l": 40, "r": 20, "t": 60, "b": 40},
                         legend={"orientation": "h", "y": -0.2})
    return figure


if __name__ == "__main__":
    import sys
    from pathlib import Path

    from training.validate import validate_file

    report = validate_file(Path(sys.argv[1]))
    token_histogram(report.example_lengths, report.context_limit).write_html(Path(sys.argv[1]).with_name("token_lengths.html"))

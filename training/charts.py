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


if __name__ == "__main__":
    import sys
    from pathlib import Path

    from training.validate import validate_file

    report = validate_file(Path(sys.argv[1]))
    token_histogram(report.example_lengths, report.context_limit).write_html(Path(sys.argv[1]).with_name("token_lengths.html"))


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

"""Plotly charts for reports: built here (testable, reusable from notebooks), shown by the app.

    python -m training.evaluation.charts FILE.jsonl     # writes token_lengths.html next to the file
"""

from __future__ import annotations

import plotly.graph_objects as go

from training.base.phrases import Phrases

PHRASES = Phrases("charts")


def token_histogram(lengths: list[int], context_limit: int | None = None, title: str | None = None,
                    language: str = "en") -> go.Figure:
    """Histogram of example lengths, with the context limit marked when it is within view."""
    figure = go.Figure(go.Histogram(x=lengths, nbinsx=min(40, max(5, len(set(lengths)))),
                                    name=PHRASES("examples", language), marker_color="#2563eb"))
    if context_limit and lengths and context_limit <= max(lengths) * 1.5:
        figure.add_vline(x=context_limit, line_dash="dash", line_color="#dc2626",
                         annotation_text=PHRASES("limit", language, limit=context_limit))
    figure.update_layout(title=title or PHRASES("tokens.title", language), xaxis_title=PHRASES("tokens", language),
                         yaxis_title=PHRASES("examples", language), bargap=0.05,
                         height=320, margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return figure


def loss_chart(steps: list[tuple[int, float]], evals: list[tuple[int, float]], total_steps: int | None = None,
               language: str = "en") -> go.Figure:
    """Training loss per step and validation loss at each evaluation, as the run goes."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[s for s, _ in steps], y=[v for _, v in steps], mode="lines",
                                name=PHRASES("training_loss", language), line={"color": "#2563eb"}))
    if evals:
        figure.add_trace(go.Scatter(x=[s for s, _ in evals], y=[v for _, v in evals], mode="lines+markers",
                                    name=PHRASES("validation_loss", language), line={"color": "#dc2626"}))
    figure.update_layout(title=PHRASES("loss.title", language), xaxis_title=PHRASES("step", language),
                         yaxis_title=PHRASES("loss", language), height=320,
                         xaxis={"range": [0, total_steps]} if total_steps else {},
                         margin={"l": 40, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return figure


def eval_chart(summary: dict, language: str = "en") -> go.Figure:
    """Quality per system (F1, exact match, valid JSON) beside its cost (mean prompt tokens, p50 latency)."""
    from plotly.subplots import make_subplots

    systems = list(summary)
    figure = make_subplots(rows=1, cols=3, subplot_titles=tuple(PHRASES(key, language) for key in (
        "quality", "prompt_tokens", "latency")), column_widths=[0.5, 0.25, 0.25])
    colors = ["#2563eb", "#16a34a", "#9333ea"]
    for color, (key, name) in zip(colors, (("f1", "F1"), ("exact_match", PHRASES("exact_match", language)),
                                           ("valid_json_rate", PHRASES("valid_json", language)))):
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

    from training.data.validate import validate_file

    report = validate_file(Path(sys.argv[1]))
    token_histogram(report.example_lengths, report.context_limit).write_html(Path(sys.argv[1]).with_name("token_lengths.html"))

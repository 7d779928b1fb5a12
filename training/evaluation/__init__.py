"""Evaluation: ingredient-list metrics, the held-out evaluation of fine-tune against baselines, the diagnosis of a
run from its own numbers (with citations into knowledge/), and Plotly charts."""

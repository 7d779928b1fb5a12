"""Fine-Tuning Tutor's training side: dataset preparation, fine-tuning jobs and evaluation.

Empty for now: each capability lands here as a module when it works end to end (see the README's roadmap).
"""

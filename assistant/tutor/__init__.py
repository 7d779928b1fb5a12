"""The tutor: grounded answers with sources (answers.py), the conversation they continue, re-ranking by what it
already showed, follow-ups, the "Should I fine-tune?" check, quizzes, "Explain my run", the A/B contenders, and the
process-wide tutor (service.py)."""

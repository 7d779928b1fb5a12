"""Fine-Tuning Tutor's chat side: everything a learner talks to. It builds on `training/` and is never imported by it.

    chat/       the Chainlit app (app.py) and its flows: dataset, models, training, A/B, quiz, token view
    web/        what a shared instance needs on the HTTP side: accounts, logins, origins, body limits, history, uploads
    inference/  the local generation engine (llama.cpp or transformers runtimes) and the chat backends
    retrieval/  the knowledge base: chunks of knowledge/*.md in Chroma, embeddings, lexical search, grounding checks
    tutor/      the grounded tutor, the conversation, "Should I fine-tune?", quizzes, explanations, A/B contenders
    server/     `tutor serve`: the OpenAI-compatible HTTP server
    cli/        the `tutor` command
    i18n.py     the chat side's view of the text catalog (training/base/texts/)

The order of these layers, lowest first, is stated and enforced in tests/test_layers.py.
"""

"""The Chainlit app (app.py: `chainlit run assistant/chat/app.py`) and its flows, thin handlers over library code
that also serves the CLI and the tests. Action payloads are untrusted: actions.py checks each before any work."""

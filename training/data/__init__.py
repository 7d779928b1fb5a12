"""Data: the recipe-assistant dataset (RecipeNLG -> chat JSONL, as in the OpenAI cookbook), validation like the
cookbook's checks with errors by line, and token counts and cost the way each trainer will see them."""

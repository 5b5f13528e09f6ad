"""REST API of the positions app: steps (the open and close endpoints), positions (positions and history)."""

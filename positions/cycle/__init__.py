"""The daily open and close steps and their runs: run (claims, events, result lines), runner (the run lock and a
transaction per strategy), open, close, manual (closing by hand), daily (the whole cycle), replay (past days)."""

"""Where the project lives and how settings read the environment (``.env`` for a developer, real variables win)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer's own .env (never committed) is read when present; real environment variables win.
env.read_env(BASE_DIR / ".env", overwrite=False)

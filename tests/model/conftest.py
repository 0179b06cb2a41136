"""The model's tests share their scripted-run helpers through scripted.py beside this file."""

from __future__ import annotations

import sys
from pathlib import Path

# Under --import-mode=importlib test folders are not on sys.path.
sys.path.insert(0, str(Path(__file__).parent))

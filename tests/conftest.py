import sys
from pathlib import Path

# tests/published_masc.py, the reference implementation, is imported by tests and benchmarks.
sys.path.insert(0, str(Path(__file__).parent))

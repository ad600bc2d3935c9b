"""How quickly the command line answers when no model is needed, next to importing torch alone, in one run.

    python benchmarks/startup.py [--repeat 5]

Prints a Markdown table: `swapforward --help`, `swapforward methods`, a bad value and an unknown flag, each as a
fresh process (the fastest of --repeat runs), against `python -c "import torch"`; the ratio below 1 is the point:
none of them imports torch, diffusers or transformers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASES = [
    ("swapforward --help", ["-m", "swapforward", "--help"]),
    ("swapforward methods", ["-m", "swapforward", "methods"]),
    ("swapforward audio rain --seconds -1 (a bad value)", ["-m", "swapforward", "audio", "rain", "--seconds", "-1"]),
    ("swapforward audio rain --bogus (an unknown flag)", ["-m", "swapforward", "audio", "rain", "--bogus"]),
    ('python -c "import torch"', ["-c", "import torch"]),
]


def fastest(args: list[str], repeat: int) -> float:
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True)
        walls.append(time.perf_counter() - start)
    return min(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    walls = {name: fastest(command, args.repeat) for name, command in CASES}
    torch_wall = walls['python -c "import torch"']
    print("| command | wall (s), fastest of", args.repeat, "| / import torch |\n| --- | ---: | ---: |")
    for name, wall in walls.items():
        print(f"| {name} | {wall:.3f} | {wall / torch_wall:.2f} |")


if __name__ == "__main__":
    main()

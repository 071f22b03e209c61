"""Every maze level's reference levels, measured: chance (a uniformly random policy), the
best memoryless policy found (one that acts on the current 3 x 3 view alone), the solved
threshold and the oracle (an agent that knows where the reward is). README's maze table.

    python benchmarks/maze_references.py
"""

from __future__ import annotations

from sweep.tasks.maze import LEVELS, MazeTask


def main() -> None:
    print("level          side steps  chance  memoryless  solved at  oracle")
    for level in LEVELS:
        task = MazeTask.from_level(level)
        oracle = task.references["oracle"]
        print(
            f"{level:<14} {task.config.size:>4} {task.steps:>5} {task.chance:>7.1f} "
            f"{task.memoryless:>11.1f} {task.solved_threshold:>10.1f} {oracle:>7.1f}"
        )


if __name__ == "__main__":
    main()

"""Reply-trimming accuracy on tests/corpus/replies: the share of agent replies whose
relayed text equals the expected answer.

    python bench/replies.py [-v]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reply_corpus import cases, relayed, same_answer


def main() -> None:
    verbose = "-v" in sys.argv
    all_cases = cases()
    started = time.perf_counter()
    wrong = []
    for case in all_cases:
        got = relayed(case)
        if not same_answer(got, case.expected):
            wrong.append((case.name, got))
    took = (time.perf_counter() - started) / len(all_cases) * 1000
    right = len(all_cases) - len(wrong)
    print(
        f"{right}/{len(all_cases)} replies relayed as expected ({right / len(all_cases):.0%}),"
        f" {took:.1f} ms per reply (parse and decide)"
    )
    for name, got in wrong:
        print(f"  wrong: {name}" + (f"\n{got!r}" if verbose else ""))


if __name__ == "__main__":
    main()

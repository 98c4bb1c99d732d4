"""The main job shown by `make demo`: trace the seed functions and print their IR."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import seeds  # noqa: E402

import graphc  # noqa: E402


def main() -> None:
    for name, args in seeds.EXAMPLE_ARGS.items():
        fn = getattr(seeds, name)
        g = graphc.trace(fn, *args)
        g.verify()
        print(f"== {name}: {fn.__doc__.splitlines()[0]}")
        print(g.pretty())
        print()


if __name__ == "__main__":
    main()

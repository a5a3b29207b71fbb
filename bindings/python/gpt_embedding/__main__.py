"""``python -m gpt_embedding``: runs the seed's built-in checks (forward pass, gradient flow,
shape consistency, device handling, parameter counts, statistical properties, position
encodings) on the loaded library and prints a report; exits 1 if a check fails, 2 if the
library cannot be loaded. See :mod:`gpt_embedding.selfcheck`."""
import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gpt_embedding",
                                 description="Runs the built-in checks on the loaded libgpt_embedding and "
                                             "prints a report (exit status 1 if a check fails).")
    ap.add_argument("--seed", type=int, default=0, help="seed of the checks' random inputs (default 0)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only the checks whose name contains NAME (repeatable), e.g. --only gradient")
    args = ap.parse_args(argv)
    try:
        from gpt_embedding import selfcheck
    except OSError as e:  # the library could not be loaded: say why
        print(f"gpt_embedding: {e}", file=sys.stderr)
        return 2
    return 1 if selfcheck.run(sys.stdout, seed=args.seed, only=args.only) else 0


if __name__ == "__main__":
    sys.exit(main())

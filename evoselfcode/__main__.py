import sys

try:
    from evoselfcode.cli import main

    status = main()
except KeyboardInterrupt:  # Ctrl-C reaches every job, wherever it is (even importing): no traceback
    print("evoselfcode: interrupted", file=sys.stderr)
    status = 130
sys.exit(status)

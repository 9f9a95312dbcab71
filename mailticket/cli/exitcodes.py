"""The command line's exit codes, named once.

0 done; 1 the request failed (unknown ticket, wrong state, ...); 2 bad arguments (argparse's own
code); 3 the config file is invalid; 4 a temporary failure (database unreachable): try again.
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_TEMPORARY = 0, 1, 2, 3, 4
